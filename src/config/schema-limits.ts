// The config schema's quotas and rate limits (top level, and per homeserver), apart for size.
import { nonNegativeInt, positiveInt } from './schema-primitives.js';

const MiB = 1024 * 1024;
const unlimitedOrCount = { type: 'integer', minimum: 0, default: 0 } as const;

/** Upload quotas (matrix-media-repo's uploads.quotas users list, plus bytes per day and homeserver totals); 0: no limit. */
const quotaLimits = {
  maxBytes: unlimitedOrCount,
  maxFiles: unlimitedOrCount,
  // Bytes uploaded in the last 24 hours (a sliding window).
  maxBytesPerDay: unlimitedOrCount,
} as const;

export const quotasShape = {
  type: 'object',
  additionalProperties: false,
  properties: {
    // The first rule whose glob matches the user ID applies (* any run of characters, ? one).
    users: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['glob'],
        properties: { glob: { type: 'string', minLength: 1 }, ...quotaLimits, maxPending: positiveInt },
      },
    },
    // Totals over every user of the homeserver.
    homeserver: { type: 'object', additionalProperties: false, default: {}, properties: quotaLimits },
  },
} as const;
export const quotas = { ...quotasShape, default: {} } as const;

/** A token bucket: perSecond tokens added, up to burstCount; perSecond 0: no limit (Synapse's rc_* names). */
const bucket = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: { perSecond: { type: 'number', minimum: 0, default: 0 }, burstCount: { ...positiveInt, default: 1 } },
} as const;

/** The endpoint families: the unit of rate limits, metrics labels and the access log. */
export const LIMITED_FAMILIES = ['upload', 'download', 'thumbnail', 'config', 'federation'] as const;

const familyLimits = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: { perUser: bucket, perIp: bucket, perServer: bucket },
} as const;

export const rateLimitsShape = {
  type: 'object',
  additionalProperties: false,
  properties: {
    enabled: { type: 'boolean', default: false },
    // CIDR ranges (or single addresses) never limited, e.g. a bridge's host.
    exemptIps: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    // User-ID globs never limited.
    exemptUsers: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    families: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: Object.fromEntries(LIMITED_FAMILIES.map((f) => [f, familyLimits])) as Record<(typeof LIMITED_FAMILIES)[number], typeof familyLimits>,
    },
    // Bytes per second of media sent to one client IP: responses are slowed, never refused.
    downloadBandwidth: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { bytesPerSecond: { ...nonNegativeInt, default: 0 }, burstBytes: { ...positiveInt, default: 16 * MiB } },
    },
    // Remote media fetches started towards one origin server.
    remoteFetches: bucket,
  },
} as const;
export const rateLimits = { ...rateLimitsShape, default: {} } as const;
