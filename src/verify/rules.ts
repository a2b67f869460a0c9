import {RegError} from '../core/errors.js'
import {quoted} from '../core/quote.js'

/**
 * What each real client requires of a registry, in one table. A rule is checked against the live
 * registry; when it is broken, the clients in `breaks` would fail and those in `warns` would lose
 * something (a fallback, a secondary command) but still pull. The comment above each rule names the
 * client source file the rule comes from. The ground-truth test (test/verify-ground-truth.test.ts)
 * runs skopeo, podman and ctr against hosts that break each rule and holds these verdicts to what
 * they actually do.
 */

export const CLIENT_IDS = ['docker', 'containerd', 'podman', 'crane', 'oras', 'regctl'] as const
export type ClientId = typeof CLIENT_IDS[number]

/** Who each client id stands for (the libraries whose rules it follows). */
export const CLIENTS: Record<ClientId, string> = {
  docker: 'docker pull (moby, the distribution client)',
  containerd: 'containerd: ctr, nerdctl, kubelet (core/remotes/docker)',
  podman: 'podman, skopeo, buildah, CRI-O (containers/image)',
  crane: 'crane (go-containerregistry)',
  oras: 'oras (oras-go)',
  regctl: 'regctl (regclient)',
}

export type RuleId =
  | 'reachable' | 'api-root' | 'tag-head-digest' | 'head-content-length' | 'get-content-length'
  | 'manifest-content-type' | 'index-content-type' | 'content-type-parameters' | 'tag-digest-header'
  | 'digest-content' | 'blob-encoding' | 'redirect' | 'redirect-token' | 'range' | 'missing-404' | 'referrers'
  | 'head' | 'content-live' | 'tags-list' | 'catalog' | 'manifest-size' | 'cache-headers' | 'cors'

export interface Rule {
  id: RuleId
  /** what is checked, one line */
  checks: string
  /** clients that fail when the rule is broken */
  breaks: readonly ClientId[]
  /** clients that still pull but lose something (a fallback, a listing command) */
  warns: readonly ClientId[]
}

const ALL = CLIENT_IDS

export const RULES: readonly Rule[] = [
  // Every client: a registry that does not answer is no registry.
  {id: 'reachable', checks: 'the registry answers HTTP', breaks: ALL, warns: []},
  // containers/image docker/docker_client.go (detectPropertiesHelper): the ping refuses any status but 200 and 401.
  // go-containerregistry pkg/v1/remote/transport/ping.go: CheckError(resp, 200, 401).
  // Not docker: moby distribution/registry.go only reads the auth challenge of the ping. Not containerd:
  // core/remotes/docker/resolver.go never pings. Not oras: registry/remote/repository.go pulls without one.
  {id: 'api-root', checks: '/v2/ answers 200 or 401', breaks: ['podman', 'crane'], warns: []},
  // A tag or digest that does not answer 200 cannot be pulled by anyone; with --tree, one that answers other
  // bytes than the tree's is stale: a client pulls something reg did not deploy.
  {id: 'content-live', checks: 'every checked tag and digest answers 200 (with --tree: with the tree\'s bytes)', breaks: ALL, warns: []},
  // containerd core/remotes/docker/resolver.go resolves a tag with HEAD, refuses a status other than 2xx and 404,
  // and takes the size from it. oras-go Resolve (oras resolve, discover), regclient ManifestHead and crane digest
  // (cmd/crane/cmd/digest.go) have a GET to fall back on, or are not used to pull.
  {id: 'head', checks: 'HEAD of a tag answers as its GET does (status, Content-Length)', breaks: ['containerd'], warns: ['crane', 'oras', 'regctl']},
  // oras-go registry/remote/repository.go (generateDescriptor): a HEAD by tag without Docker-Content-Digest fails
  // Resolve (oras resolve, discover, attach); oras pull and cp do not HEAD: content/copy.go (resolveRoot) GETs the
  // tag with FetchReference and hashes the body. containerd core/remotes/docker/resolver.go: "no
  // Docker-Content-Digest header, fetching manifest instead" (GET). go-containerregistry pkg/v1/remote/descriptor.go:
  // remote.Head needs it (crane digest falls back to GET). regclient regclient/manifest.go:
  // WithManifestRequireDigest falls back from HEAD to GET.
  {id: 'tag-head-digest', checks: 'HEAD of a tag carries Docker-Content-Digest', breaks: [], warns: ['containerd', 'crane', 'oras', 'regctl']},
  // oras-go registry/remote/repository.go: "unknown response Content-Length" on the HEAD of Resolve (not used by
  // oras pull). containerd core/remotes/docker/resolver.go: size -1 falls back to GET. go-containerregistry
  // remote.Head parses it.
  {id: 'head-content-length', checks: 'HEAD of a manifest carries Content-Length', breaks: [], warns: ['containerd', 'crane', 'oras']},
  // oras-go registry/remote/repository.go: FetchReference, which oras pull and cp resolve a tag with
  // (content/copy.go resolveRoot), refuses a GET whose length is unknown ("unknown response Content-Length");
  // Go's net/http transport.go drops Content-Length when it decodes a gzip answer it asked for.
  {id: 'get-content-length', checks: 'GET of a tag has a Content-Length and no Content-Encoding', breaks: ['oras'], warns: []},
  // moby distribution/pull_v2.go + distribution manifests.go (UnmarshalManifest): an unknown type is read as schema 1, refused.
  // containerd core/remotes/docker/resolver.go takes the descriptor's media type from Content-Type, and
  // core/remotes/docker/fetcher.go fetches any type it does not know as a manifest from blobs/<digest>, where a
  // static host has no manifest (ctr: "could not fetch content descriptor … not found"). containers/image
  // manifest/manifest.go (NormalizedMIMEType): anything unknown (application/json, application/octet-stream) is
  // parsed as schema 1, and fails ("unsupported schema version 2").
  // oras-go registry/remote/repository.go (descriptor from Content-Type; a manifest fetched by digest must be typed
  // as its descriptor says), content/graph.go (successors by type).
  // regclient types/manifest/manifest.go: unsupported media type. go-containerregistry pkg/v1/remote/descriptor.go
  // Image(): "Unexpected media type", logged, and the image is read anyway.
  {id: 'manifest-content-type', checks: 'an image manifest is served with its media type as Content-Type', breaks: ['docker', 'containerd', 'podman', 'oras', 'regctl'], warns: ['crane']},
  // As above; go-containerregistry reads an index served with another type as an image manifest, and fails.
  {id: 'index-content-type', checks: 'an index is served with its media type as Content-Type', breaks: ALL, warns: []},
  // go-containerregistry pkg/v1/remote/descriptor.go compares the whole header (types.MediaType(Content-Type)); the
  // others strip parameters (containers/image simplifyContentType, containerd getManifestMediaType, mime.ParseMediaType).
  {id: 'content-type-parameters', checks: 'Content-Type of a manifest has no parameters', breaks: [], warns: ['crane']},
  // containerd core/remotes/docker/resolver.go and oras-go registry/remote/repository.go trust the HEAD's digest and
  // fetch by it; regclient regclient/manifest.go (ManifestHead). go-containerregistry remote.Head users (crane digest).
  // docker (distribution/pull_v2.go) and containers/image GET the tag and hash the bytes they got.
  {id: 'tag-digest-header', checks: 'Docker-Content-Digest of a tag equals the digest of the bytes a GET returns', breaks: ['containerd', 'oras', 'regctl'], warns: ['crane']},
  // Every client verifies content by digest and size: containerd core/content/helpers.go (Copy), containers/image
  // docker/docker_image_src.go + copy/blob.go (digest verification), go-containerregistry pkg/v1/remote/fetcher.go
  // (verify.ReadCloser), oras-go content/reader.go (VerifyReader), regclient types/blob (digest check).
  {id: 'digest-content', checks: 'manifests and blobs by digest: the bytes hash to the digest, the size equals the descriptor\'s', breaks: ALL, warns: []},
  // Go's net/http transport.go decodes a gzip answer it asked for (every GET without Range); containerd
  // core/remotes/docker/fetcher.go decodes Content-Encoding itself: the bytes then no longer hash to the digest.
  {id: 'blob-encoding', checks: 'blobs are sent without Content-Encoding', breaks: ALL, warns: []},
  // net/http client.go follows at most 10 redirects, and drops Authorization to another host: the target must be public.
  {id: 'redirect', checks: 'redirects lead, without credentials, to a 200 within 10 hops', breaks: ALL, warns: []},
  // A redirect to a registry that asks for a token (a blob offloaded to Docker Hub, GHCR...): containerd
  // core/remotes/docker/authorizer.go answers a challenge from whichever host sends it (ctr pulls through
  // such a redirect in test/offload.test.ts); containers/image docker/docker_client.go and go-containerregistry
  // pkg/v1/remote/transport/bearer.go fetch tokens only for the registry they were opened on, and classic
  // Docker's distribution client does the same (skopeo and podman fail there, same test). oras-go
  // registry/remote/auth/client.go and regclient reghttp key tokens by host, unconfirmed here: warned.
  {id: 'redirect-token', checks: 'a redirect does not lead to a location that asks for a token (401 Bearer)', breaks: ['docker', 'podman', 'crane'], warns: ['oras', 'regctl']},
  // containerd core/remotes/docker/fetcher.go and containers/image docker/body_reader.go resume an interrupted
  // blob with Range; without 206 they start over.
  {id: 'range', checks: 'blobs answer Range with 206 and Accept-Ranges: bytes', breaks: [], warns: ['containerd', 'podman']},
  // oras-go registry/remote/repository.go and regclient scheme/reg/referrer.go fall back to the sha256-<hex> tag only
  // on 404; containerd core/remotes/docker/resolver.go tries the next host only on 404; go-containerregistry
  // pkg/v1/remote/referrers.go falls back on 404, 400 and 406; containers/image docker/docker_image_src.go reads
  // sigstore attachments (when enabled) as absent only on 404.
  {id: 'missing-404', checks: 'missing manifests and blobs answer 404 (not 403)', breaks: ['oras', 'regctl'], warns: ['containerd', 'crane', 'podman']},
  // oras-go registry/remote/repository.go (Referrers: the answer must be typed as an OCI index), regclient
  // scheme/reg/referrer.go, go-containerregistry pkg/v1/remote/referrers.go (falls back to the tag schema).
  {id: 'referrers', checks: 'the referrers API answers an OCI index or 404, the sha256-<hex> tag an index or 404', breaks: ['oras', 'regctl'], warns: ['crane']},
  // Listings, not pulls: skopeo inspect and list-tags (containers/image docker/docker_image.go GetRepositoryTags),
  // crane ls (pkg/v1/remote/list.go), oras repo tags, regctl tag ls.
  {id: 'tags-list', checks: 'tags/list answers {"name","tags"} (with --tree: the tree\'s tags)', breaks: [], warns: ['podman', 'crane', 'oras', 'regctl']},
  // crane catalog (pkg/v1/remote/catalog.go), oras repo ls, regctl repo ls.
  {id: 'catalog', checks: '/v2/_catalog answers {"repositories"} (with --tree: the tree\'s repositories)', breaks: [], warns: ['crane', 'oras', 'regctl']},
  // containerd core/remotes/docker/resolver.go: MaxManifestSize (4 MiB). containers/image internal/iolimits/iolimits.go:
  // maxManifestBodySize (4 MiB).
  {id: 'manifest-size', checks: 'manifests are at most 4 MiB', breaks: ['containerd', 'podman'], warns: []},
  // Caches and CDNs, not clients: a digest never changes (long max-age), a tag does (short).
  {id: 'cache-headers', checks: 'Cache-Control: digests long-lived or immutable, tags and lists short', breaks: [], warns: []},
  // Browsers (registry web UIs), not clients.
  {id: 'cors', checks: 'Access-Control-Allow-Origin lets a browser read the registry', breaks: [], warns: []},
]

export const RULES_BY_ID: ReadonlyMap<RuleId, Rule> = new Map(RULES.map((rule) => [rule.id, rule]))

export function parseClients(value: string | undefined): ClientId[] {
  if (value === undefined || value.trim() === '' || value.trim() === 'all') return [...CLIENT_IDS]
  const chosen = value.split(',').map((c) => c.trim().toLowerCase()).filter(Boolean)
  // skopeo and nerdctl follow the same library as podman and containerd.
  const aliases: Record<string, ClientId> = {skopeo: 'podman', buildah: 'podman', ctr: 'containerd', nerdctl: 'containerd', kubelet: 'containerd', regclient: 'regctl'}
  return [...new Set(chosen.map((c) => {
    const id = (CLIENT_IDS as readonly string[]).includes(c) ? c as ClientId : aliases[c]
    if (!id) throw new UnknownClientError(c)
    return id
  }))]
}

class UnknownClientError extends RegError {
  constructor(name: string) {
    super(`unknown client ${quoted(name)}`, `--client takes a comma-separated list of ${CLIENT_IDS.join(', ')}`)
  }
}
