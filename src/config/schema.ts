// JSON schema of the YAML config. Unknown keys are errors so a typo never silently falls back to a default.

const secret = {
  description: 'a string, {file: PATH} or {env: NAME}',
  oneOf: [
    { type: 'string', minLength: 1 },
    { type: 'object', additionalProperties: false, required: ['file'], properties: { file: { type: 'string', minLength: 1 } } },
    { type: 'object', additionalProperties: false, required: ['env'], properties: { env: { type: 'string', minLength: 1 } } },
  ],
} as const;

const serverNameList = { type: 'array', items: { type: 'string', minLength: 1 } } as const;
const positiveInt = { type: 'integer', minimum: 1 } as const;
const nonNegativeInt = { type: 'integer', minimum: 0 } as const;
const httpUrl = { type: 'string', pattern: '^https?://[^\\s]+$' } as const;

const thumbnailSize = {
  type: 'object',
  additionalProperties: false,
  required: ['width', 'height', 'method'],
  properties: { width: positiveInt, height: positiveInt, method: { enum: ['crop', 'scale'] } },
} as const;

const notary = {
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

const homeserver = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'clientApi'],
  properties: {
    name: { type: 'string', minLength: 1 },
    clientApi: httpUrl,
    signingKeyPath: { type: 'string', minLength: 1 },
    // Extra Host header values (e.g. matrix.example.org) that map to this homeserver.
    hostnames: serverNameList,
    maxUploadBytes: positiveInt,
    federation: {
      type: 'object',
      additionalProperties: false,
      properties: { allowOrigins: serverNameList, denyOrigins: serverNameList },
    },
  },
} as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: { host: { type: 'string', minLength: 1 }, port: { type: 'integer', minimum: 0, maximum: 65535 } },
    },
    trustProxy: { type: ['boolean', 'string', 'integer'] },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    dataDir: { type: 'string', minLength: 1 },
    masterKey: secret,
    database: {
      type: 'object',
      additionalProperties: false,
      properties: { url: secret, poolMax: positiveInt },
    },
    storage: {
      type: 'object',
      additionalProperties: false,
      properties: {
        filesystem: {
          type: 'object',
          additionalProperties: false,
          required: ['path'],
          properties: { path: { type: 'string', minLength: 1 } },
        },
      },
    },
    homeservers: { type: 'array', items: homeserver },
    auth: {
      type: 'object',
      additionalProperties: false,
      properties: {
        tokenCacheTtlMs: nonNegativeInt,
        whoamiTimeoutMs: positiveInt,
        allowQueryStringToken: { type: 'boolean' },
      },
    },
    media: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxUploadBytes: positiveInt,
        legacyFreezeAt: { type: ['string', 'null'] },
        pendingUploadExpiryMs: positiveInt,
        maxPendingUploadsPerUser: positiveInt,
        maxTimeoutMs: positiveInt,
        thumbnails: {
          type: 'object',
          additionalProperties: false,
          properties: {
            sizes: { type: 'array', minItems: 1, items: thumbnailSize },
            maxSourceBytes: positiveInt,
            maxPixels: positiveInt,
            animated: { type: 'boolean' },
          },
        },
      },
    },
    federation: {
      type: 'object',
      additionalProperties: false,
      properties: {
        notaries: { type: 'array', items: notary },
        notaryFirst: { type: 'boolean' },
        keyRefetchIntervalMs: nonNegativeInt,
        // server name -> base URL, bypassing discovery (internal routing, tests).
        serverOverrides: { type: 'object', additionalProperties: httpUrl },
        ipBlocklist: { type: 'array', items: { type: 'string' } },
        ipAllowlist: { type: 'array', items: { type: 'string' } },
        remoteMaxBytes: positiveInt,
        connectTimeoutMs: positiveInt,
        requestTimeoutMs: positiveInt,
        failureCacheMs: nonNegativeInt,
        // Name servers for discovery ("ip" or "ip:port"); unset: the system resolver.
        dnsServers: { type: 'array', items: { type: 'string', minLength: 1 } },
        // PEM file of extra CA certificates trusted for outbound TLS (private CAs, tests).
        caFile: { type: 'string', minLength: 1 },
      },
    },
  },
} as const;
