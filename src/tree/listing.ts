import {formatPlatform} from '../core/manifest.js'
import {blobAndManifestBytes, type TreeState} from './model.js'
import {RegistryTree} from './registry-tree.js'

export interface ListedImage {
  repository: string
  tag: string
  digest: string
  mediaType: string
  platforms: string[]
  /** manifest(s), configs and layers the tag pulls (all platforms), each counted once */
  size: number
}

export interface TreeListing {
  repositories: number
  images: ListedImage[]
  bytesStored: number
}

function imageOf(index: TreeState, repository: string, tag: string, digest: string): ListedImage {
  const record = index.manifests[digest]
  const manifests = new Set<string>()
  const visit = (d: string) => {
    manifests.add(d)
    for (const child of index.manifests[d]?.children ?? []) visit(child)
  }
  visit(digest)
  const blobs = new Set([...manifests].flatMap((d) => index.manifests[d].blobs))
  const size = [...manifests].reduce((s, d) => s + index.manifests[d].size, 0) + [...blobs].reduce((s, b) => s + index.blobs[b].size, 0)
  const platforms = (record.kind === 'index' ? record.children.map((c) => index.manifests[c].platform) : [record.platform])
    .map(formatPlatform).filter((p): p is string => Boolean(p))
  return {repository, tag, digest, mediaType: record.mediaType, platforms, size}
}

export async function listTree(dir: string): Promise<TreeListing> {
  // The state is all a listing needs: checked like any load, its objects not derived.
  const {state: index} = await RegistryTree.loadState(dir)
  const images: ListedImage[] = []
  for (const repository of Object.keys(index.repositories).sort()) {
    for (const [tag, digest] of Object.entries(index.repositories[repository].tags).sort(([a], [b]) => (a < b ? -1 : 1))) {
      images.push(imageOf(index, repository, tag, digest))
    }
  }
  return {repositories: Object.keys(index.repositories).length, images, bytesStored: blobAndManifestBytes(index)}
}
