/** The text is not valid JSON: the reader refuses it (never quoting it). */
export class InvalidJsonError extends Error {}

/** The text is JSON, but not an object: `value` is what it is. */
export class NotAnObjectError extends Error {
  constructor(readonly value: unknown) {
    super('not a JSON object')
  }
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d

function isWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09
}

/** Members of a section parsed together: a few hundred kilobytes of text at a time, never the whole file. */
const BATCH_BYTES = 1 << 18

export interface JsonSectionsHandler {
  /** a top-level member that is not a section (or a section whose value is not an object), parsed whole */
  value(key: string, value: unknown): void
  /** a section begins (again, when its key repeats: JSON's last one wins, so what it had is dropped) */
  sectionStart(section: string): void
  /** a member of a section, in the order of the text */
  member(section: string, key: string, value: unknown): void
}

/**
 * One JSON object read from UTF-8 chunks, as JSON.parse would read it, without ever holding its
 * text or its parsed form whole: the top-level members named in `sections` (objects of many
 * members: a tree's repositories, manifests and blobs) are handed over member by member, parsed a
 * batch of members at a time; the other top-level members whole. Anything JSON.parse would refuse
 * is refused (InvalidJsonError); duplicate keys are handed over in order, so the last one wins.
 */
export class JsonSectionsReader {
  private state: 'not-object' | 'start' | 'key' | 'key-or-end' | 'in-key' | 'colon' | 'value-start' | 'value' | 'section' | 'after-value' | 'done' = 'start'
  /** the bytes of the token being read (a key, a value, a batch of a section's members) across chunks */
  private parts: Buffer[] = []
  private partsBytes = 0
  private key = ''
  private depth = 0
  private inString = false
  private escaped = false
  /** the section being read has been cut into a batch already (its last batch may not be empty then) */
  private sectionCut = false

  /** `batchBytes`: how much of a section is parsed at once (tests make it small) */
  constructor(private readonly sections: ReadonlySet<string>, private readonly handler: JsonSectionsHandler, private readonly batchBytes = BATCH_BYTES) {}

  write(chunk: Buffer): void {
    let start = 0
    const keep = (end: number) => {
      if (end > start) {
        this.parts.push(chunk.subarray(start, end))
        this.partsBytes += end - start
      }
    }
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]
      switch (this.state) {
        case 'start':
        case 'key':
        case 'key-or-end':
        case 'colon':
        case 'value-start':
        case 'after-value':
        case 'done':
          if (isWhitespace(byte)) break
          if (this.state === 'start') {
            if (byte === OPEN_OBJECT) this.state = 'key-or-end'
            else {
              // Read whole, only to tell JSON that is no object from text that is no JSON.
              this.state = 'not-object'
              start = i
              i = chunk.length
            }
          } else if (this.state === 'key' || this.state === 'key-or-end') {
            if (byte === CLOSE_OBJECT && this.state === 'key-or-end') this.state = 'done'
            else if (byte === QUOTE) {
              this.state = 'in-key'
              this.inString = true
              start = i
            } else throw new InvalidJsonError()
          } else if (this.state === 'colon') {
            if (byte !== COLON) throw new InvalidJsonError()
            this.state = 'value-start'
          } else if (this.state === 'value-start') {
            if (byte === OPEN_OBJECT && this.sections.has(this.key)) {
              this.handler.sectionStart(this.key)
              this.state = 'section'
              this.sectionCut = false
              start = i + 1
            } else {
              this.state = 'value'
              start = i
              i-- // the value's first byte is read as part of it
            }
          } else if (this.state === 'after-value') {
            if (byte === COMMA) this.state = 'key'
            else if (byte === CLOSE_OBJECT) this.state = 'done'
            else throw new InvalidJsonError()
          } else throw new InvalidJsonError()
          break
        case 'not-object':
          break
        case 'in-key':
          if (this.escaped) this.escaped = false
          else if (byte === BACKSLASH) this.escaped = true
          else if (byte === QUOTE) {
            keep(i + 1)
            this.key = this.parse(this.take()) as string
            this.inString = false
            this.state = 'colon'
          }
          break
        case 'value':
        case 'section': {
          i = this.scan(chunk, i)
          if (i === chunk.length) break
          if (chunk[i] === COMMA) {
            if (this.state === 'value') {
              keep(i)
              this.handler.value(this.key, this.parse(this.take()))
              this.state = 'key'
              start = i + 1
            } else if (this.partsBytes + i - start >= this.batchBytes) {
              keep(i)
              this.batch(false)
              start = i + 1
            }
            // else a separator inside the batch
            break
          }
          // The end of the value, closing the object it is in.
          keep(i)
          if (this.state === 'value') {
            this.handler.value(this.key, this.parse(this.take()))
            i-- // the closing brace is the top level's
          } else {
            if (chunk[i] !== CLOSE_OBJECT) throw new InvalidJsonError()
            this.batch(true)
          }
          this.state = 'after-value'
          start = i + 1
          break
        }
      }
    }
    if (this.state === 'in-key' || this.state === 'value' || this.state === 'section' || this.state === 'not-object') keep(chunk.length)
  }

  /**
   * From `i`, past strings and nested values, to the next comma or closing bracket outside them
   * (the end of a member), or the end of the chunk: one tight loop over the bytes.
   */
  private scan(chunk: Buffer, i: number): number {
    let {depth, inString, escaped} = this
    const length = chunk.length
    for (; i < length; i++) {
      const byte = chunk[i]
      if (inString) {
        if (escaped) escaped = false
        else if (byte === BACKSLASH) escaped = true
        else if (byte === QUOTE) inString = false
      } else if (byte === QUOTE) inString = true
      else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) depth++
      else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY || byte === COMMA) {
        if (depth === 0) break
        if (byte !== COMMA) depth--
      }
    }
    this.depth = depth
    this.inString = inString
    this.escaped = escaped
    return i
  }

  /** The end of the text: the object must be complete. */
  end(): void {
    if (this.state === 'not-object') throw new NotAnObjectError(this.parse(this.take()))
    if (this.state !== 'done') throw new InvalidJsonError()
  }

  private take(): string {
    const text = Buffer.concat(this.parts, this.partsBytes).toString('utf8')
    this.parts = []
    this.partsBytes = 0
    return text
  }

  private parse(text: string): unknown {
    try {
      return JSON.parse(text)
    } catch {
      throw new InvalidJsonError()
    }
  }

  /** The members read since the last cut, handed over; `last`: the section's closing brace. */
  private batch(last: boolean): void {
    const text = this.take()
    // Between two cuts, or after the last one, there must be a member (`{"a":1,}` is not JSON).
    if (text.trim() === '' && (!last || this.sectionCut)) throw new InvalidJsonError()
    if (!last) this.sectionCut = true
    const members = this.parse(`{${text}}`) as Record<string, unknown>
    for (const key in members) if (Object.hasOwn(members, key)) this.handler.member(this.key, key, members[key])
  }
}
