import path from 'node:path'
import type {Readable} from 'node:stream'
import type {ImageSource, SourceRoot} from '../core/image-source.js'
import type {Descriptor} from '../core/manifest.js'
import {extractArchive} from './archive.js'
import {OciLayoutSource} from './oci-layout.js'

/** `oci-archive:FILE[:REF]`: a tar of an OCI layout, extracted (safely) to scratch space and read as one. */
export class OciArchiveSource implements ImageSource {
  private layout?: OciLayoutSource

  constructor(readonly description: string, private readonly archive: string, private readonly workDir: string, private readonly ref?: string) {}

  private async open(): Promise<OciLayoutSource> {
    if (!this.layout) {
      const dir = path.join(this.workDir, 'oci-archive')
      await extractArchive(this.archive, dir, this.description)
      this.layout = new OciLayoutSource(this.description, dir, this.ref)
    }
    return this.layout
  }

  async roots(): Promise<SourceRoot[]> {
    return (await this.open()).roots()
  }

  async readManifest(descriptor: Descriptor): Promise<Buffer> {
    return (await this.open()).readManifest(descriptor)
  }

  async openBlob(descriptor: Descriptor): Promise<Readable> {
    return (await this.open()).openBlob(descriptor)
  }

  async close(): Promise<void> {}
}
