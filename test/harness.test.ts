// The test harness itself, where CI found it flaky. Ports: test files run side by side, and a port handed
// to two of them makes one test talk to another test's server (CI once saw `reg serve --cors off` answer
// with CORS headers). Waits: a server that reloads drops connections, and a check that threw ended the
// wait at once (CI once failed on nginx's reload).
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {readFile, rm} from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {describe, it} from 'node:test'
import {freePort, PORT_RESERVATIONS, waitUntil} from './static-hosts.js'
import {REPO_ROOT} from './support.js'

const DRAWS = 300

/** A process of its own drawing DRAWS ports, as a test file would; it holds them until `release`. */
async function drawInChild(): Promise<{ports: number[]; release: () => Promise<void>}> {
  const script = `import {freePort} from ${JSON.stringify(path.join(REPO_ROOT, 'test/static-hosts.ts'))}\nconst ports = []\nfor (let i = 0; i < ${DRAWS}; i++) ports.push(await freePort())\nconsole.log(JSON.stringify(ports))\nprocess.stdin.resume()\nprocess.stdin.on('end', () => process.exit(0))`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'inherit']})
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let stdout = ''
  for await (const chunk of child.stdout) {
    stdout += String(chunk)
    if (stdout.endsWith('\n')) break
  }
  assert.ok(stdout.endsWith('\n'), `the child drew no ports (exit ${child.exitCode})`)
  return {ports: JSON.parse(stdout) as number[], release: async () => {
    child.stdin.end()
    await exited
  }}
}

describe('test ports', () => {
  it('processes drawing at once never get the same port, and none from the range listen(0) uses', async () => {
    const children = await Promise.all([drawInChild(), drawInChild()])
    const here = await Promise.all(Array.from({length: 20}, () => freePort()))
    await Promise.all(children.map((c) => c.release()))
    const all = [...children[0].ports, ...children[1].ports, ...here]
    assert.equal(all.length, 2 * DRAWS + 20)
    assert.equal(new Set(all).size, all.length, 'a port was handed out twice')
    const [ephemeralLow] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number)
    for (const port of all) assert.ok(port >= 1024 && port < ephemeralLow, `${port} is in the ephemeral range (from ${ephemeralLow})`)
  })

  it('a port held by a server outside the harness is never handed out', async () => {
    // Ports this process drew, so no other test uses them; their reservations dropped, so only the
    // servers bound here keep them: ports of outside servers, and one port free of both.
    const drawn = await Promise.all(Array.from({length: 21}, () => freePort()))
    const held = drawn.slice(0, 20)
    const free = drawn[20]
    const servers = await Promise.all(held.map((port) => new Promise<net.Server>((resolve, reject) => {
      const server = net.createServer()
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve(server))
    })))
    try {
      await Promise.all(drawn.map((port) => rm(path.join(PORT_RESERVATIONS, String(port)))))
      const candidates = [...held, ...held, free]
      let next = 0
      assert.equal(await freePort(() => candidates[next++]), free)
      assert.equal(next, candidates.length, 'every held port was tried and passed over')
    } finally {
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
    }
  })

  it('a wait counts a check that throws as "not yet", and reports the last error if it never succeeds', async () => {
    let checks = 0
    await waitUntil('a server that drops the first two connections', async () => {
      checks++
      if (checks <= 2) throw new TypeError('fetch failed', {cause: new Error('other side closed')})
      return true
    }, {intervalMs: 1})
    assert.equal(checks, 3)
    await assert.rejects(waitUntil('a server that never answers', async () => {
      throw new TypeError('fetch failed', {cause: new Error('connect ECONNREFUSED 127.0.0.1:1')})
    }, {attempts: 3, intervalMs: 1}), {message: 'a server that never answers: still not so after 3 checks 1 ms apart; the last check failed: fetch failed (connect ECONNREFUSED 127.0.0.1:1)'})
  })
})
