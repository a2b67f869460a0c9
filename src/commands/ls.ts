import {Args, Flags} from '@oclif/core'
import {RegCommand} from '../ui/reg-command.js'
import {listTree, type TreeListing} from '../tree/listing.js'
import {formatBytes, quantity} from '../ui/format.js'

/** The closing line of `reg ls`, in `reg build`'s words. */
export function listingLine(listing: TreeListing): string {
  return `${quantity(listing.repositories, 'repository', 'repositories')}, ${quantity(listing.images.length, 'tag')}; ${formatBytes(listing.bytesStored)} in blobs and manifests`
}

export default class Ls extends RegCommand {
  static override summary = 'List the repositories, tags, digests, platforms and sizes of a tree'
  static override args = {dir: Args.string({description: 'tree directory', default: './dist'})}
  static override flags = {json: Flags.boolean({description: 'print JSON'})}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Ls)
    let listing: TreeListing
    try {
      listing = await listTree(args.dir)
    } catch (error) {
      this.fail(error)
    }
    if (flags.json) {
      this.log(JSON.stringify(listing, null, 2))
      return
    }
    for (const image of listing.images) {
      this.log(`${image.repository}:${image.tag}\t${image.digest}\t${image.platforms.join(',') || '-'}\t${formatBytes(image.size)}`)
    }
    this.log(listingLine(listing))
  }
}
