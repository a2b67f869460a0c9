import {apacheBackend} from '../../plugins/backend-apache/index.js'
import {dirBackend} from '../../plugins/backend-dir/index.js'
import {netlifyBackend} from '../../plugins/backend-netlify/index.js'
import {nginxBackend} from '../../plugins/backend-nginx/index.js'
import {r2Backend, s3Backend, scalewayBackend} from '../../plugins/backend-s3/index.js'
import {RegError} from '../core/errors.js'
import type {BackendPlugin} from './plugin.js'

export const BACKEND_PLUGINS: readonly BackendPlugin[] = [dirBackend, nginxBackend, apacheBackend, s3Backend, r2Backend, scalewayBackend, netlifyBackend]

export function backendPlugin(name: string): BackendPlugin {
  const plugin = BACKEND_PLUGINS.find((p) => p.name === name)
  if (!plugin) throw new RegError(`unknown backend "${name}"`, `available: ${BACKEND_PLUGINS.map((p) => p.name).join(', ')}`)
  return plugin
}

/** Every plugin's flags, for `reg deploy`'s static flag list. */
export function pluginFlags(): BackendPlugin['flags'] {
  return Object.assign({}, ...BACKEND_PLUGINS.map((p) => p.flags)) as BackendPlugin['flags']
}
