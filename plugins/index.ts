import {apacheBackend} from './backend-apache/index.js'
import {cloudflareBackend} from './backend-cloudflare/index.js'
import {cloudflarePagesBackend} from './backend-cloudflare-pages/index.js'
import {dirBackend} from './backend-dir/index.js'
import {netlifyBackend} from './backend-netlify/index.js'
import {nginxBackend} from './backend-nginx/index.js'
import {r2Backend} from './backend-r2/index.js'
import {s3Backend} from './backend-s3/index.js'
import {scalewayBackend} from './backend-scaleway/index.js'
import {BackendRegistry} from './registry.js'

/** Every backend `reg deploy` knows, in the order help lists them: one line each. */
export const BACKENDS = new BackendRegistry([
  dirBackend,
  nginxBackend,
  apacheBackend,
  s3Backend,
  r2Backend,
  scalewayBackend,
  netlifyBackend,
  cloudflareBackend,
  cloudflarePagesBackend,
])
