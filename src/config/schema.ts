// JSON schema of the YAML config: the one description of it. Types derive from it (FromSchema) and ajv
// fills in every `default:`. Unknown keys are errors so a typo never silently falls back to a default.
// An object whose keys have defaults defaults to {} itself, or ajv never descends to fill them.

const MiB = 1024 * 1024;

/** What a datastore can hold; `all` in a config's forKinds means every one of these. */
export const MEDIA_KINDS = ['local_media', 'remote_media', 'thumbnails'] as const;

export const secret = {
  description: 'a string, {file: PATH} or {env: NAME}',
  oneOf: [
    { type: 'string', minLength: 1 },
    { type: 'object', additionalProperties: false, required: ['file'], properties: { file: { type: 'string', minLength: 1 } } },
    { type: 'object', additionalProperties: false, required: ['env'], properties: { env: { type: 'string', minLength: 1 } } },
  ],
} as const;

const serverNameList = { type: 'array', items: { type: 'string', minLength: 1 }, default: [] } as const;
const positiveInt = { type: 'integer', minimum: 1 } as const;
const nonNegativeInt = { type: 'integer', minimum: 0 } as const;
const httpUrl = { type: 'string', pattern: '^https?://[^\\s]+$' } as const;

export const thumbnailSize = {
  type: 'object',
  additionalProperties: false,
  required: ['width', 'height', 'method'],
  properties: { width: positiveInt, height: positiveInt, method: { enum: ['crop', 'scale'] } },
} as const;

export const notary = {
  type: 'object',
  additionalProperties: false,
  required: ['serverName', 'verifyKeys'],
  properties: {
    serverName: { type: 'string', minLength: 1 },
    // Key ID -> unpadded base64 public key; the notary's answers must carry a signature by one of these.
    verifyKeys: { type: 'object', minProperties: 1, additionalProperties: { type: 'string', minLength: 43 } },
    url: httpUrl,
  },
} as const;

export const homeserver = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'clientApi'],
  properties: {
    name: { type: 'string', minLength: 1 },
    clientApi: httpUrl,
    signingKeyPath: { type: 'string', minLength: 1 },
    // Extra Host header values (e.g. matrix.example.org) that map to this homeserver.
    hostnames: serverNameList,
    // No static default: it falls back to media.maxUploadBytes.
    maxUploadBytes: positiveInt,
    federation: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { allowOrigins: serverNameList, denyOrigins: serverNameList },
    },
  },
} as const;

// matrix-media-repo's datastore list; `type` picks the shape of `opts` (ajv's discriminator).
const datastoreCommon = {
  id: { type: 'string', pattern: '^[a-z0-9_-]+$' },
  forKinds: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['all', ...MEDIA_KINDS] } },
  // Only these hosted homeservers' new media is written here; unset: every homeserver's.
  forHomeservers: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } },
} as const;

export const fileDatastore = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'type', 'forKinds', 'opts'],
  properties: {
    ...datastoreCommon,
    type: { const: 'file' },
    opts: { type: 'object', additionalProperties: false, required: ['path'], properties: { path: { type: 'string', minLength: 1 } } },
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

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        host: { type: 'string', minLength: 1, default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8000 },
      },
    },
    trustProxy: { type: ['boolean', 'string', 'integer'], default: 'loopback' },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    dataDir: { type: 'string', minLength: 1, default: 'data' },
    masterKey: secret,
    database: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { url: secret, poolMax: { ...positiveInt, default: 10 } },
    },
    // How often each instance looks for cache invalidations published by the others.
    cacheInvalidationPollMs: { ...positiveInt, default: 2000 },
    // No static default: the default store lives under dataDir.
    datastores: { type: 'array', items: datastore },
    homeservers: { type: 'array', items: homeserver, default: [] },
    auth: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        tokenCacheTtlMs: { ...nonNegativeInt, default: 60_000 },
        whoamiTimeoutMs: { ...positiveInt, default: 10_000 },
        allowQueryStringToken: { type: 'boolean', default: true },
      },
    },
    media: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxUploadBytes: { ...positiveInt, default: 100 * MiB },
        // Spec v1.12 expects servers to have frozen unauthenticated media; this is the date matrix.org froze.
        legacyFreezeAt: { type: ['string', 'null'], default: '2024-09-04T00:00:00Z' },
        pendingUploadExpiryMs: { ...positiveInt, default: 24 * 3600_000 },
        maxPendingUploadsPerUser: { ...positiveInt, default: 10 },
        maxTimeoutMs: { ...positiveInt, default: 60_000 },
        thumbnails: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            // The spec's recommended pre-generated thumbnail sizes.
            sizes: {
              type: 'array',
              minItems: 1,
              items: thumbnailSize,
              default: [
                { width: 32, height: 32, method: 'crop' },
                { width: 96, height: 96, method: 'crop' },
                { width: 320, height: 240, method: 'scale' },
                { width: 640, height: 480, method: 'scale' },
                { width: 800, height: 600, method: 'scale' },
              ],
            },
            maxSourceBytes: { ...positiveInt, default: 20 * MiB },
            maxPixels: { ...positiveInt, default: 32_000_000 },
            animated: { type: 'boolean', default: true },
          },
        },
      },
    },
    federation: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        notaries: { type: 'array', items: notary, default: [] },
        notaryFirst: { type: 'boolean', default: false },
        keyRefetchIntervalMs: { ...nonNegativeInt, default: 60_000 },
        // server name -> base URL, bypassing discovery (internal routing, tests).
        serverOverrides: { type: 'object', additionalProperties: httpUrl, default: {} },
        ipBlocklist: { type: 'array', items: { type: 'string' }, default: [] },
        ipAllowlist: { type: 'array', items: { type: 'string' }, default: [] },
        // No static default: it falls back to media.maxUploadBytes.
        remoteMaxBytes: positiveInt,
        connectTimeoutMs: { ...positiveInt, default: 10_000 },
        requestTimeoutMs: { ...positiveInt, default: 60_000 },
        failureCacheMs: { ...nonNegativeInt, default: 60_000 },
        // Name servers for discovery ("ip" or "ip:port"); unset: the system resolver.
        dnsServers: { type: 'array', items: { type: 'string', minLength: 1 } },
        // PEM file of extra CA certificates trusted for outbound TLS (private CAs, tests).
        caFile: { type: 'string', minLength: 1 },
      },
    },
  },
} as const;
