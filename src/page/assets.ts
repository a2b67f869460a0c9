/**
 * The catalog page's stylesheet and script: served under names carrying their hash (immutable), so
 * a new version of reg publishes new names and no browser keeps a stale one. No framework, no
 * request to any other host; the script only adds to pages that read fine without it, and builds
 * what it shows with textContent, never from markup.
 */

export const PAGE_CSS = `:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#5b6470;--line:#d8dee4;--card:#f6f8fa;--accent:#0a58ca;--badge:#e7f0ff}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9aa4af;--line:#30363d;--card:#161b22;--accent:#58a6ff;--badge:#1f2d44}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header,main,footer{max-width:60rem;margin:0 auto;padding:0 1rem}
header{padding-top:1.25rem}
h1{font-size:1.5rem;margin:.25rem 0;overflow-wrap:anywhere}
a{color:var(--accent)}
.muted,footer{color:var(--muted)}
footer{font-size:.875rem;padding-bottom:2rem}
.filters{display:flex;flex-wrap:wrap;gap:.5rem;margin:1rem 0}
.filters input,.filters select{font:inherit;padding:.4rem .6rem;border:1px solid var(--line);border-radius:.4rem;background:var(--bg);color:var(--fg)}
.filters input{flex:1 1 14rem}
ul.list{list-style:none;margin:0;padding:0}
ul.list>li{border:1px solid var(--line);border-radius:.5rem;background:var(--card);padding:.75rem 1rem;margin:.5rem 0}
.repo-name{font-weight:600;overflow-wrap:anywhere}
.row{display:flex;flex-wrap:wrap;align-items:center;gap:.25rem .5rem;margin:.25rem 0}
.tag-name{font-weight:600;overflow-wrap:anywhere}
code{font:.875rem/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--bg);border:1px solid var(--line);border-radius:.3rem;padding:.15rem .4rem;overflow-wrap:anywhere;min-width:0}
button{font:inherit;font-size:.8rem;padding:.2rem .6rem;border:1px solid var(--line);border-radius:.3rem;background:var(--bg);color:var(--fg);cursor:pointer}
.badge{font-size:.75rem;border-radius:1rem;padding:0 .5rem;background:var(--badge)}
ul.platforms{list-style:none;margin:.25rem 0 0;padding:0;display:flex;flex-wrap:wrap;gap:.25rem 1rem;font-size:.875rem}
dl.labels{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.5rem 0}
dl.labels dt{color:var(--muted)}
dl.labels dd{margin:0;overflow-wrap:anywhere}
[hidden]{display:none!important}
`

export const PAGE_JS = `(() => {
  'use strict'
  const body = document.body
  const host = body.dataset.host || location.host
  for (const el of document.querySelectorAll('.host')) el.textContent = host

  const el = (tag, props, ...children) => {
    const node = document.createElement(tag)
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'text') node.textContent = value
      else if (key === 'class') node.className = value
      else node.setAttribute(key, value)
    }
    for (const child of children) if (child) node.append(child)
    return node
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  const size = (bytes) => {
    let value = bytes
    let unit = 0
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++ }
    return unit === 0 ? bytes + ' B' : value.toFixed(1) + ' ' + units[unit]
  }
  const when = (created) => created ? created.slice(0, 16).replace('T', ' ') + ' UTC' : ''
  const copyRow = (label, text, prefix) => {
    const code = el('code')
    if (prefix) code.append(prefix, el('span', {class: 'host', text: host}), text)
    else code.textContent = text
    return el('div', {class: 'row'}, code, el('button', {type: 'button', class: 'copy', 'aria-label': label, text: 'Copy'}))
  }
  const getJson = async (url) => {
    const response = await fetch(url, {headers: {Accept: 'application/json'}})
    if (!response.ok) throw new Error(url + ': ' + response.status)
    return response.json()
  }

  document.addEventListener('click', (event) => {
    const button = event.target.closest && event.target.closest('button.copy')
    if (!button || !navigator.clipboard) return
    const code = button.previousElementSibling
    navigator.clipboard.writeText(code ? code.textContent : '').then(() => {
      button.textContent = 'Copied'
      setTimeout(() => { button.textContent = 'Copy' }, 1500)
    }, () => { button.textContent = 'Select and copy' })
  })

  const repositories = document.getElementById('repositories')
  if (repositories) {
    const search = document.getElementById('search')
    const namespace = document.getElementById('namespace')
    const count = document.getElementById('count')
    const total = Number(repositories.dataset.total)
    const chunks = Number(repositories.dataset.chunks)
    let all
    const entries = async () => {
      if (all) return all
      if (repositories.children.length >= total) {
        all = [...repositories.children].map((li) => ({name: li.dataset.name, li}))
      } else {
        const loaded = []
        for (let i = 0; i < chunks; i++) loaded.push(...(await getJson(repositories.dataset.base + 'repositories-' + i + '.json')).repositories)
        all = loaded.map((entry) => ({name: entry.name, entry}))
      }
      return all
    }
    const item = (entry) => {
      const li = el('li', {'data-name': entry.name})
      li.append(el('div', {class: 'row'}, el('a', {class: 'repo-name', href: repositories.dataset.base.slice(0, -2) + entry.name + '/-/index.html', text: entry.name}),
        el('span', {class: 'muted', text: entry.tags + (entry.tags === 1 ? ' tag' : ' tags')}),
        entry.updated ? el('span', {class: 'muted', text: 'updated ' + when(entry.updated)}) : null))
      if (entry.description) li.append(el('div', {class: 'muted', text: entry.description}))
      return li
    }
    const LIMIT = 500
    let pending = 0
    const apply = async () => {
      const ticket = ++pending
      const query = search.value.trim().toLowerCase()
      const ns = namespace.value
      const items = await entries()
      if (ticket !== pending) return
      const matches = items.filter((i) => i.name.includes(query) && (!ns || i.name.startsWith(ns + '/')))
      if (items[0] && items[0].li) {
        const shown = new Set(matches)
        for (const i of items) i.li.hidden = !shown.has(i)
      } else {
        repositories.replaceChildren(...matches.slice(0, LIMIT).map((i) => item(i.entry)))
      }
      count.textContent = matches.length + ' of ' + total + ' repositories' + (matches.length > LIMIT && !(items[0] && items[0].li) ? ' (first ' + LIMIT + ' shown)' : '')
    }
    const run = () => apply().catch((error) => { count.textContent = 'could not load the list: ' + error.message })
    search.addEventListener('input', run)
    namespace.addEventListener('change', run)
  }

  const tags = document.getElementById('tags')
  const more = document.getElementById('more')
  if (tags && more) {
    let next = Number(tags.dataset.chunks) - 1
    const rendered = Number(tags.dataset.rendered)
    const total = Number(tags.dataset.total)
    const name = tags.dataset.name
    const tagItem = (t) => {
      const head = el('div', {class: 'row'}, el('span', {class: 'tag-name', text: t.tag}))
      for (const a of t.attached || []) head.append(el('span', {class: 'badge', title: a.type, text: a.kind}))
      if (t.created) head.append(el('time', {class: 'muted', datetime: t.created, text: when(t.created)}))
      const platforms = el('ul', {class: 'platforms'})
      for (const p of t.platforms) platforms.append(el('li', {}, el('span', {text: p.platform || 'image'}), ' ', el('span', {class: 'muted', text: size(p.size)})))
      if (t.morePlatforms) platforms.append(el('li', {class: 'muted', text: '+' + t.morePlatforms + ' more'}))
      return el('li', {'data-tag': t.tag}, head, copyRow('Copy the pull command', '/' + name + ':' + t.tag, 'docker pull '), copyRow('Copy the digest', t.digest), platforms)
    }
    if (total > rendered) more.hidden = false
    // chunks run oldest first; the newest tags rendered are on the page already
    const loadMore = async () => {
      const skip = total - rendered
      let added = 0
      while (next >= 0 && added === 0) {
        const chunk = await getJson(tags.dataset.base + 'tags-' + next + '.json')
        next--
        const older = chunk.tags.map((t, i) => ({t, position: chunk.first + i})).filter((x) => x.position < skip).reverse()
        for (const {t} of older) tags.append(tagItem(t))
        added += older.length
        if (chunk.first === 0) next = -1
      }
    }
    more.addEventListener('click', () => {
      more.disabled = true
      loadMore().then(() => {
        more.disabled = false
        more.hidden = next < 0
      }, (error) => { more.textContent = 'could not load more tags: ' + error.message })
    })
  }
})()
`
