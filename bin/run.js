#!/usr/bin/env node
import {execute} from '@oclif/core'

// Once per run, on stderr (never in --json stdout), for a person at a terminal (not in scripts' and CI's
// captured output): Node 20 still works, but its support ended in April 2026.
if (Number(process.versions.node.split('.')[0]) < 22 && process.stderr.isTTY) {
  process.stderr.write('reg: note: Node 20 is past its end of life (April 2026); reg still runs on it, Node 22 or 24 is recommended.\n')
}

await execute({dir: import.meta.url})
