/**
 * A string someone else chose (a name, a tag, a digest, a field of a manifest), as an error message
 * shows it: in quotes, at most `max` characters, everything but printable ASCII escaped. A refused
 * value is never copied whole into a message, and cannot move the cursor or recolour a terminal.
 */
export function quoted(text: string, max = 80): string {
  const shown = text.length > max ? text.slice(0, max) : text
  const escaped = shown.replaceAll(/[^\x20-\x7e]|["\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))
  return text.length > max ? `"${escaped}"... (${text.length} characters)` : `"${escaped}"`
}
