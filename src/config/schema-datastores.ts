// The config schema's datastore list, apart for size.
import { httpUrl, MEDIA_KINDS, nonNegativeInt, positiveInt, secret } from './schema-primitives.js';

// matrix-media-repo's datastore list; `type` picks the shape of `opts` (ajv's discriminator).
const datastoreCommon = {
  id: { type: 'string', pattern: '^[a-z0-9_-]+$' },
  forKinds: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['all', ...MEDIA_KINDS] } },
  // Only these hosted homeservers' new media is written here; unset: every homeserver's.
  forHomeservers: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } },
} as const;

// An absolute path or URI prefix without a trailing slash: "/aa/bb/<sha256>" is appended to it.
const prefix = { type: 'string', pattern: '^/[^?#\\s]*[^/?#\\s]$' } as const;

// The reverse proxy sends the file itself (nginx X-Accel-Redirect, Apache/lighttpd X-Sendfile); unset: off.
export const proxyOffload = {
  type: 'object',
  additionalProperties: false,
  required: ['mode'],
  properties: {
    mode: { enum: ['x-accel-redirect', 'x-sendfile'] },
    // x-accel-redirect: the proxy's internal location aliased to opts.path (required); x-sendfile: the
    // folder as the proxy sees it (no static default: opts.path).
    internalPrefix: prefix,
    minBytes: { ...nonNegativeInt, default: 1024 * 1024 },
    // Federation answers a Location to a URL nginx's secure_link checks (x-accel-redirect only).
    secureLink: {
      type: 'object',
      additionalProperties: false,
      required: ['prefix', 'secret'],
      properties: {
        prefix,
        secret,
        expirySeconds: { ...positiveInt, maximum: 86_400, default: 300 },
      },
    },
  },
} as const;

export const fileDatastore = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'type', 'forKinds', 'opts'],
  properties: {
    ...datastoreCommon,
    type: { const: 'file' },
    opts: {
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: { path: { type: 'string', minLength: 1 }, proxyOffload },
    },
  },
} as const;

export const s3Datastore = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'type', 'forKinds', 'opts'],
  properties: {
    ...datastoreCommon,
    type: { const: 's3' },
    opts: {
      type: 'object',
      additionalProperties: false,
      required: ['bucketName'],
      properties: {
        // No static default: AWS's endpoint for the region.
        endpoint: httpUrl,
        region: { type: 'string', minLength: 1, default: 'us-east-1' },
        bucketName: { type: 'string', minLength: 1 },
        prefix: { type: 'string', pattern: '^(|[^/].*/)$', default: '' },
        forcePathStyle: { type: 'boolean', default: false },
        // Both or neither; neither: the AWS SDK's own chain (AWS_ACCESS_KEY_ID..., instance roles).
        accessKeyId: secret,
        accessSecret: secret,
        storageClass: { type: 'string', minLength: 1 },
        sse: { enum: ['AES256', 'aws:kms'] },
        kmsKeyId: { type: 'string', minLength: 1 },
        redirect: { enum: ['off', 'presigned', 'publicBaseUrl'], default: 'off' },
        presignExpirySeconds: { type: 'integer', minimum: 1, maximum: 604_800, default: 300 },
        publicBaseUrl: httpUrl,
        maxAttempts: { ...positiveInt, default: 3 },
        timeoutMs: { ...positiveInt, default: 30_000 },
      },
    },
  },
} as const;

export const datastore = {
  type: 'object',
  required: ['type'],
  properties: { type: { enum: ['file', 's3'] } },
  discriminator: { propertyName: 'type' },
  oneOf: [fileDatastore, s3Datastore],
} as const;
