// Writes examples/hello/, the small OCI image layout `npm start` serves. Deterministic: run it again
// and the digests are the same. Usage: node --import tsx scripts/make-example-image.ts
import path from 'node:path'
import {writeTinyOciLayout} from './tiny-image.js'

const out = path.resolve('examples/hello')
const image = await writeTinyOciLayout(out, {'hello.txt': 'Hello from a static registry served by reg.\n'}, 'example.com/examples/hello:1.0')
console.log(`wrote ${out}: examples/hello:1.0 ${image.manifestDigest}`)
