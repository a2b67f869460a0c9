#!/usr/bin/env node
// `npm start`: build the example image that ships in the repository into ./dist and serve it.
import {spawnSync, spawn} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import path from 'node:path'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const reg = path.join(root, 'bin', 'run.js')
const port = process.env.PORT ?? '5000'
const build = spawnSync(process.execPath, [reg, 'build', `oci:${path.join(root, 'examples/hello')}`, '-o', 'dist'], {stdio: 'inherit'})
if (build.status !== 0) process.exit(build.status ?? 1)
const serve = spawn(process.execPath, [reg, 'serve', 'dist', '-p', port], {stdio: 'inherit'})
serve.on('exit', (code) => process.exit(code ?? 0))
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => serve.kill(signal))
