import {stat} from 'node:fs/promises'
import path from 'node:path'
import {TREE_INDEX_FILE} from '../tree/model.js'
import {RegistryTree} from '../tree/registry-tree.js'

/**
 * The tree as `reg serve` answers from it now: loaded once, and again whenever its index was
 * replaced (a rebuild, a push, a proxied tag). One per server, shared by every handler.
 */
export class LiveTree {
  private loaded?: {stamp: string; tree: Promise<RegistryTree>}

  constructor(readonly dir: string) {}

  current(): Promise<RegistryTree> {
    return stat(path.join(this.dir, TREE_INDEX_FILE)).then((info) => {
      const stamp = `${info.ino}:${info.mtimeMs}:${info.size}`
      if (this.loaded?.stamp !== stamp) {
        const tree = RegistryTree.load(this.dir)
        this.loaded = {stamp, tree}
        // A failed load is not kept: the next request tries again.
        tree.catch(() => {
          if (this.loaded?.tree === tree) this.loaded = undefined
        })
      }
      return this.loaded.tree
    })
  }
}
