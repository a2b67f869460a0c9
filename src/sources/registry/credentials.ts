import {readFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

export interface Credentials {
  username: string
  password: string
  /** where they came from, for error messages */
  source: string
}

interface AuthFile {
  auths?: Record<string, {auth?: string; username?: string; password?: string}>
}

async function fromAuthFile(file: string, host: string): Promise<Credentials | undefined> {
  let parsed: AuthFile
  try {
    parsed = JSON.parse(await readFile(file, 'utf8')) as AuthFile
  } catch {
    return undefined
  }
  const hosts = host === 'docker.io' || host === 'registry-1.docker.io' ? [host, 'https://index.docker.io/v1/', 'index.docker.io', 'docker.io'] : [host, `https://${host}`, `http://${host}`]
  for (const key of hosts) {
    const entry = parsed.auths?.[key]
    if (!entry) continue
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon > 0) return {username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source: `${file} (auths["${key}"])`}
    }
    if (entry.username && entry.password) return {username: entry.username, password: entry.password, source: `${file} (auths["${key}"])`}
  }
  return undefined
}

/**
 * Credentials for a registry host, in order: `--creds user:pass`, REG_USERNAME/REG_PASSWORD, the
 * user's ~/.docker/config.json, then ${XDG_RUNTIME_DIR}/containers/auth.json. None: anonymous.
 */
export async function findCredentials(host: string, creds?: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  if (creds) {
    const colon = creds.indexOf(':')
    return {username: creds.slice(0, colon < 0 ? undefined : colon), password: colon < 0 ? '' : creds.slice(colon + 1), source: '--creds'}
  }
  if (env.REG_USERNAME) return {username: env.REG_USERNAME, password: env.REG_PASSWORD ?? '', source: 'REG_USERNAME/REG_PASSWORD'}
  const dockerConfig = path.join(env.DOCKER_CONFIG ?? path.join(env.HOME ?? os.homedir(), '.docker'), 'config.json')
  const files = [dockerConfig, ...(env.XDG_RUNTIME_DIR ? [path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json')] : [])]
  for (const file of files) {
    const found = await fromAuthFile(file, host)
    if (found) return found
  }
  return undefined
}
