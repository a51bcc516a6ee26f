// JSON schema of the YAML config: the one description of it. Types derive from it (FromSchema) and ajv
// fills in every `default:`. Unknown keys are errors so a typo never silently falls back to a default.
// An object whose keys have defaults defaults to {} itself, or ajv never descends to fill them.
import { quotas, quotasShape, rateLimits, rateLimitsShape } from './schema-limits.js';
import { datastore } from './schema-datastores.js';
import { externalSecret, httpUrl, MEDIA_KINDS, nonNegativeInt, positiveInt, secret } from './schema-primitives.js';

export { externalSecret, MEDIA_KINDS, secret };

const MiB = 1024 * 1024;



const serverNameList = { type: 'array', items: { type: 'string', minLength: 1 }, default: [] } as const;
const userIdList = { type: 'array', items: { type: 'string', pattern: '^@[^:]+:.+$' }, default: [] } as const;
// Days without access (remote) or since upload (local) after which retention purges media; null: never.
const retentionDays = { type: ['integer', 'null'], minimum: 1 } as const;

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
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1 },
    // Unset: only staticAccessTokens authenticate (a homeserver-less tenant, e.g. the trial one).
    clientApi: httpUrl,
    // Lines of "TOKEN @user:server": tokens this service accepts itself, without asking /account/whoami.
    staticAccessTokens: externalSecret,
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
    // No static default: each falls back to the top-level block as a whole.
    quotas: quotasShape,
    rateLimits: rateLimitsShape,
    // This homeserver's own admins: may administer its local media and the remote media its users fetched.
    admins: userIdList,
    // "synapse": also ask GET /_synapse/admin/v1/users/{userId}/admin whether a caller is an admin.
    adminApiKind: { enum: ['none', 'synapse'], default: 'none' },
    // Token for that call; unset: the caller's own access token (as matrix-media-repo does).
    adminApiToken: secret,
    // Overrides the global retention for this homeserver's media.
    retention: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { remoteMediaDays: retentionDays, localMediaDays: retentionDays },
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
    quotas,
    rateLimits,
    // Prometheus text at http://host:port/metrics, on a listener of its own.
    metrics: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: false },
        host: { type: 'string', minLength: 1, default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 9000 },
      },
    },
    // One info line per request, logger "access".
    accessLog: { type: 'object', additionalProperties: false, default: {}, properties: { enabled: { type: 'boolean', default: true } } },
    // Provider-wide media repository admins (matrix-media-repo's name): act on every homeserver's media.
    admins: userIdList,
    // A token that acts as a provider-wide admin, for tooling (matrix-media-repo's sharedSecretAuth).
    sharedSecretAuth: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { token: secret },
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // Purges selecting more media than this run as background tasks.
        syncPurgeLimit: { ...positiveInt, default: 1000 },
        taskHeartbeatMs: { ...positiveInt, default: 5000 },
        // A task whose instance has not heartbeated for this long is taken over by another instance.
        taskStaleMs: { ...positiveInt, default: 30_000 },
        // How long a homeserver's answer on whether a user is its admin is trusted.
        adminCheckCacheMs: { ...nonNegativeInt, default: 300_000 },
        // Access times are kept in memory and written at most this often.
        accessFlushMs: { ...positiveInt, default: 30_000 },
        // Other instances see a quarantine or deletion within this long (their record cache's lifetime).
        recordCacheTtlMs: { ...nonNegativeInt, default: 5000 },
      },
    },
    retention: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        remoteMediaDays: { ...retentionDays, default: null },
        localMediaDays: { ...retentionDays, default: null },
        intervalMs: { ...positiveInt, default: 3_600_000 },
      },
    },
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
        // Files (media and thumbnails) up to maxBytes are read whole and sent in one write; the most used
        // of them are kept in memory by content hash, up to cacheBytes in all.
        smallBlobs: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            maxBytes: { ...nonNegativeInt, default: 128 * 1024 },
            cacheBytes: { ...nonNegativeInt, default: 64 * MiB },
          },
        },
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
            // Off, as Synapse's dynamic_thumbnails: exact requested sizes are generated only when asked for.
            dynamicSizing: { type: 'boolean', default: false },
            maxSizesPerMedia: { ...positiveInt, default: 20 },
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
        // A request whose X-Matrix signatures verified is trusted this long when it comes again unchanged
        // (same headers, method, URI, destination), never past its keys' validity; 0: verify every time.
        verifiedRequestCacheMs: { ...nonNegativeInt, default: 30_000 },
        // Name servers for discovery ("ip" or "ip:port"); unset: the system resolver.
        dnsServers: { type: 'array', items: { type: 'string', minLength: 1 } },
        // PEM file of extra CA certificates trusted for outbound TLS (private CAs, tests).
        caFile: { type: 'string', minLength: 1 },
      },
    },
  },
} as const;
