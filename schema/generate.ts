// Writes schema/reg.config.schema.json from the backends' declarations (the file editors read;
// reg validates with the same schema, built in memory). Run: node --import tsx schema/generate.ts
import {writeFile} from 'node:fs/promises'
import {configSchema} from '../src/config/config-schema.js'

await writeFile(new URL('reg.config.schema.json', import.meta.url), `${JSON.stringify(configSchema(), null, 2)}\n`)
