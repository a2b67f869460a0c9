import {BACKENDS} from '../../plugins/index.js'
import {flagSchema} from '../../plugins/registry.js'
import {TRANSPORTS} from '../sources/index.js'
import {DEPLOY_FLAGS, TARGET_SETTINGS} from './deploy-flags.js'

export const CONFIG_SCHEMA_ID = 'https://github.com/reg-registry/reg/schema/reg.config.schema.json'

const NAME = '[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*'
const SOURCE = `^(${TRANSPORTS.join('|')}):`

/**
 * The JSON Schema of reg.config.json / reg.config.yaml. A target's keys are `reg deploy`'s flags, as
 * the backends declare them: the schema is derived, never edited. schema/reg.config.schema.json is
 * this, written out for editors (a test keeps it equal).
 */
export function configSchema(): object {
  const settings = Object.fromEntries(TARGET_SETTINGS.map((name) => [name, flagSchema(DEPLOY_FLAGS[name])]))
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: CONFIG_SCHEMA_ID,
    title: 'reg configuration (reg.config.json / reg.config.yaml)',
    description: 'Which images go into the registry tree and where it is deployed. Secrets never live here: they come from the environment (the AWS default credential chain, NETLIFY_AUTH_TOKEN, REG_USERNAME/REG_PASSWORD).',
    type: 'object',
    additionalProperties: false,
    properties: {
      $schema: {type: 'string'},
      out: {type: 'string', description: 'tree directory (reg build -o, reg deploy DIR); default ./dist'},
      prefix: {type: 'string', pattern: `^${NAME}$`, description: 'namespace prepended to every repository name (reg build --prefix)'},
      tagMaxAge: {type: 'integer', minimum: 0, description: 'Cache-Control max-age of tags and lists, seconds (reg build --tag-max-age)'},
      platform: {type: 'string', pattern: '^[a-z0-9]+/[a-z0-9]+(/[a-z0-9]+)?$', description: 'docker:// sources: keep one platform, os/arch[/variant]'},
      withReferrers: {type: 'boolean', description: 'docker:// sources: also copy what is attached to each image, cosign\'s sha256-<hex>.sig/.att/.sbom tags and OCI 1.1 referrers (reg build --with-referrers)'},
      page: {type: 'boolean', description: 'also publish a catalog web page at / beside /v2/ (reg build --page); on in new configs'},
      publicUrl: {type: 'string', pattern: '^https?://', description: 'the registry\'s public URL, the host of the page\'s pull commands (reg build --public-url); default: the host the page is viewed on'},
      sources: {
        type: 'array',
        minItems: 1,
        description: 'image sources, in skopeo\'s transport syntax (reg build SOURCE...)',
        items: {
          anyOf: [
            {type: 'string', pattern: SOURCE, description: 'SOURCE[=NAME[:TAG]]'},
            {
              type: 'object',
              additionalProperties: false,
              required: ['source'],
              properties: {
                source: {type: 'string', pattern: SOURCE, description: 'oci:PATH[:REF], docker-daemon:NAME[:TAG], docker://HOST/NAME[:TAG] ...'},
                name: {type: 'string', pattern: `^${NAME}(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$`, description: 'target NAME[:TAG] in the registry'},
              },
            },
          ],
        },
      },
      url: {type: 'string', pattern: '^https?://[^/?#@\\s]+/?$', description: 'the registry\'s public URL, https://HOST[:PORT], as clients pull from it (reg deploy --public-url; a target\'s public-url wins)'},
      retention: {
        type: 'object',
        additionalProperties: false,
        description: 'what reg prune removes when no rule is given on its command line (a tag goes when every rule given says so)',
        properties: {
          keepLast: {type: 'integer', minimum: 0, description: 'per repository, keep the N newest matched tags (versions by precedence, then other tags by time)'},
          olderThan: {type: 'string', pattern: '^(0|[0-9]+[smhdw])$', description: 'remove matched tags set longer ago than this: 30d, 12h, 2w'},
          match: {anyOf: [{type: 'string'}, {type: 'array', items: {type: 'string'}}], description: 'NAME:TAG globs (* within a name component, ** across) of the tags the rules apply to; default every tag'},
          untagged: {type: 'boolean', description: 'also remove manifests held without a tag (never a referrer of a kept manifest)'},
        },
      },
      defaultTarget: {type: 'string', description: 'the target `reg deploy` uses without --target (default: the only one)'},
      targets: {
        type: 'object',
        description: 'named deploy targets: reg deploy --target NAME',
        minProperties: 1,
        additionalProperties: {$ref: '#/definitions/target'},
      },
    },
    definitions: {
      target: {
        type: 'object',
        additionalProperties: false,
        required: ['backend'],
        properties: {
          backend: {enum: BACKENDS.names},
          ...settings,
          ...BACKENDS.targetProperties,
        },
      },
    },
  }
}
