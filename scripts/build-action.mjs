// Bundles the GitHub Action (action/main.ts and everything it imports) into action/dist/index.js,
// so the action runs with no install step. `node scripts/build-action.mjs OUTFILE` writes elsewhere
// (the test that fails when the committed bundle is stale builds into a temp file and compares).
import {copyFile} from 'node:fs/promises'
import path from 'node:path'
import {build} from 'esbuild'

/** @netlify/api loads its OpenAPI spec with createRequire(), which a bundler cannot follow: import the JSON instead. */
const netlifySpecAsImport = {
  name: 'netlify-open-api-json',
  setup(builder) {
    builder.onLoad({filter: /@netlify[\\/]api[\\/]lib[\\/]open_api\.js$/}, (args) => ({
      contents: "import spec from '@netlify/open-api/dist/swagger.json'; export const openApiSpec = spec;",
      resolveDir: path.dirname(args.path),
      loader: 'js',
    }))
  },
}

const outfile = process.argv[2] ?? 'action/dist/index.js'
await build({
  entryPoints: ['action/main.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // CommonJS dependencies use require() and __dirname: give the ESM bundle both.
  banner: {js: [
    "import {createRequire as __regCreateRequire} from 'node:module';",
    "import {fileURLToPath as __regFileURLToPath} from 'node:url';",
    "import {dirname as __regDirname} from 'node:path';",
    'const require = __regCreateRequire(import.meta.url);',
    'const __filename = __regFileURLToPath(import.meta.url);',
    'const __dirname = __regDirname(__filename);',
  ].join(' ')},
  // Optional, loaded lazily in try/catch: ssh2's native speedups (it falls back to JS) and typescript
  // (oclif reads tsconfig files only in development).
  external: ['cpu-features', '*.node', 'typescript'],
  legalComments: 'none',
  minify: true,
  metafile: process.env.REG_ACTION_METAFILE === '1',
  plugins: [netlifySpecAsImport],
  logLevel: 'warning',
})
// The Cloudflare Worker's script is a file the backend uploads as it is (not code of the bundle): beside it.
await copyFile('plugins/backend-cloudflare/worker.js', path.join(path.dirname(outfile), 'worker.js'))
