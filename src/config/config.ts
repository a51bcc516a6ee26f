// YAML -> validated, typed config with defaults filled in. Every error names the file, the path in it and why.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDocument } from 'yaml';
import { isValidServerName } from '../matrix/server-name.js';
import { configSchema } from './schema.js';

export type Secret = string | { file: string } | { env: string };

export interface ThumbnailSize { width: number; height: number; method: 'crop' | 'scale' }
export interface NotaryConfig { serverName: string; verifyKeys: Record<string, string>; url?: string }

export interface HomeserverConfig {
  name: string;
  clientApi: string;
  signingKeyPath?: string;
  hostnames: string[];
  maxUploadBytes: number;
  federation: { allowOrigins: string[]; denyOrigins: string[] };
}

export interface Config {
  /** The file it came from, for messages; undefined when running on built-in defaults. */
  source?: string;
  listen: { host: string; port: number };
  trustProxy: boolean | string | number;
  logLevel: string;
  dataDir: string;
  masterKey?: Secret;
  database: { url?: Secret; poolMax: number };
  storage: { filesystem: { path: string } };
  homeservers: HomeserverConfig[];
  auth: { tokenCacheTtlMs: number; whoamiTimeoutMs: number; allowQueryStringToken: boolean };
  media: {
    maxUploadBytes: number;
    legacyFreezeAt: Date | null;
    pendingUploadExpiryMs: number;
    maxPendingUploadsPerUser: number;
    maxTimeoutMs: number;
    thumbnails: { sizes: ThumbnailSize[]; maxSourceBytes: number; maxPixels: number; animated: boolean };
  };
  federation: {
    notaries: NotaryConfig[];
    notaryFirst: boolean;
    keyRefetchIntervalMs: number;
    serverOverrides: Record<string, string>;
    ipBlocklist: string[];
    ipAllowlist: string[];
    remoteMaxBytes: number;
    connectTimeoutMs: number;
    requestTimeoutMs: number;
    failureCacheMs: number;
    dnsServers?: string[];
    caFile?: string;
  };
}

export class ConfigError extends Error {
  constructor(file: string, path: string, reason: string) {
    super(`${file}${path ? ` at ${path}` : ''}: ${reason}`);
    this.name = 'ConfigError';
  }
}

const MiB = 1024 * 1024;

/** The spec's recommended pre-generated thumbnail sizes. */
const DEFAULT_THUMBNAIL_SIZES: ThumbnailSize[] = [
  { width: 32, height: 32, method: 'crop' },
  { width: 96, height: 96, method: 'crop' },
  { width: 320, height: 240, method: 'scale' },
  { width: 640, height: 480, method: 'scale' },
  { width: 800, height: 600, method: 'scale' },
];

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
const validate = ajv.compile(configSchema);

/** Reads and validates a YAML config file; relative paths in it are taken from the file's folder. */
export function loadConfigFile(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, '', `cannot read the file (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const where = first.linePos ? `line ${first.linePos[0].line}, column ${first.linePos[0].col}` : '';
    throw new ConfigError(file, where, `invalid YAML: ${first.message.split('\n')[0]}`);
  }
  return buildConfig(doc.toJS() ?? {}, file);
}

/** Validates a parsed config object and fills in defaults. `file` names it in errors and anchors relative paths. */
export function buildConfig(raw: unknown, file = '<defaults>'): Config {
  if (!validate(raw)) {
    const error = mostUseful(validate.errors!);
    throw new ConfigError(file, errorPath(error), describe(error));
  }
  const input = raw as RawConfig;
  const base = file === '<defaults>' ? process.cwd() : dirname(resolve(file));
  const path = (p: string) => resolve(base, p);
  const dataDir = path(input.dataDir ?? 'data');
  const maxUploadBytes = input.media?.maxUploadBytes ?? 100 * MiB;

  const homeservers = (input.homeservers ?? []).map((hs, i): HomeserverConfig => {
    const at = `/homeservers/${i}`;
    if (!isValidServerName(hs.name)) throw new ConfigError(file, `${at}/name`, `"${hs.name}" is not a valid Matrix server name`);
    for (const [j, h] of (hs.hostnames ?? []).entries()) {
      if (!isValidServerName(h)) throw new ConfigError(file, `${at}/hostnames/${j}`, `"${h}" is not a valid host name`);
    }
    return {
      name: hs.name,
      clientApi: hs.clientApi.replace(/\/+$/, ''),
      signingKeyPath: hs.signingKeyPath === undefined ? undefined : path(hs.signingKeyPath),
      hostnames: hs.hostnames ?? [],
      maxUploadBytes: hs.maxUploadBytes ?? maxUploadBytes,
      federation: { allowOrigins: hs.federation?.allowOrigins ?? [], denyOrigins: hs.federation?.denyOrigins ?? [] },
    };
  });
  assertUniqueHosts(homeservers, file);

  const freeze = input.media?.legacyFreezeAt;
  if (typeof freeze === 'string' && Number.isNaN(Date.parse(freeze))) {
    throw new ConfigError(file, '/media/legacyFreezeAt', `"${freeze}" is not a date (use ISO 8601, e.g. 2024-09-04T00:00:00Z)`);
  }
  return {
    source: file === '<defaults>' ? undefined : resolve(file),
    listen: { host: input.listen?.host ?? '127.0.0.1', port: input.listen?.port ?? 8000 },
    trustProxy: input.trustProxy ?? 'loopback',
    logLevel: input.logLevel ?? 'info',
    dataDir,
    masterKey: anchorSecret(input.masterKey, path),
    database: { url: anchorSecret(input.database?.url, path), poolMax: input.database?.poolMax ?? 10 },
    storage: { filesystem: { path: path(input.storage?.filesystem?.path ?? resolve(dataDir, 'media')) } },
    homeservers,
    auth: {
      tokenCacheTtlMs: input.auth?.tokenCacheTtlMs ?? 60_000,
      whoamiTimeoutMs: input.auth?.whoamiTimeoutMs ?? 10_000,
      allowQueryStringToken: input.auth?.allowQueryStringToken ?? true,
    },
    media: {
      maxUploadBytes,
      // Spec v1.12 expects servers to have frozen unauthenticated media; this is the date matrix.org froze.
      legacyFreezeAt: freeze === null ? null : new Date(freeze ?? '2024-09-04T00:00:00Z'),
      pendingUploadExpiryMs: input.media?.pendingUploadExpiryMs ?? 24 * 3600_000,
      maxPendingUploadsPerUser: input.media?.maxPendingUploadsPerUser ?? 10,
      maxTimeoutMs: input.media?.maxTimeoutMs ?? 60_000,
      thumbnails: {
        sizes: input.media?.thumbnails?.sizes ?? DEFAULT_THUMBNAIL_SIZES,
        maxSourceBytes: input.media?.thumbnails?.maxSourceBytes ?? 20 * MiB,
        maxPixels: input.media?.thumbnails?.maxPixels ?? 32_000_000,
        animated: input.media?.thumbnails?.animated ?? true,
      },
    },
    federation: {
      notaries: input.federation?.notaries ?? [],
      notaryFirst: input.federation?.notaryFirst ?? false,
      keyRefetchIntervalMs: input.federation?.keyRefetchIntervalMs ?? 60_000,
      serverOverrides: input.federation?.serverOverrides ?? {},
      ipBlocklist: input.federation?.ipBlocklist ?? [],
      ipAllowlist: input.federation?.ipAllowlist ?? [],
      remoteMaxBytes: input.federation?.remoteMaxBytes ?? maxUploadBytes,
      connectTimeoutMs: input.federation?.connectTimeoutMs ?? 10_000,
      requestTimeoutMs: input.federation?.requestTimeoutMs ?? 60_000,
      failureCacheMs: input.federation?.failureCacheMs ?? 60_000,
      dnsServers: input.federation?.dnsServers,
      caFile: input.federation?.caFile === undefined ? undefined : path(input.federation.caFile),
    },
  };
}

/** Resolves a secret to its text. Errors name where it was expected, never its value. */
export function readSecret(secret: Secret, what: string): string {
  if (typeof secret === 'string') return secret;
  if ('env' in secret) {
    const value = process.env[secret.env];
    if (value === undefined || value === '') throw new Error(`${what}: environment variable ${secret.env} is not set`);
    return value.trim();
  }
  try {
    return readFileSync(secret.file, 'utf8').trim();
  } catch (error) {
    throw new Error(`${what}: cannot read ${secret.file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function anchorSecret(secret: Secret | undefined, path: (p: string) => string): Secret | undefined {
  return secret !== undefined && typeof secret === 'object' && 'file' in secret ? { file: path(secret.file) } : secret;
}

function assertUniqueHosts(homeservers: HomeserverConfig[], file: string): void {
  const seen = new Map<string, number>();
  homeservers.forEach((hs, i) => {
    for (const host of [hs.name, ...hs.hostnames]) {
      const other = seen.get(host);
      if (other !== undefined) {
        throw new ConfigError(file, `/homeservers/${i}`, `"${host}" is already used by homeserver ${other}`);
      }
      seen.set(host, i);
    }
  });
}

function errorPath(error: ErrorObject): string {
  const unknownKey = error.keyword === 'additionalProperties' ? `/${(error.params as { additionalProperty: string }).additionalProperty}` : '';
  return error.instancePath + unknownKey || '/';
}

// A failed oneOf also reports each branch's failure first; the oneOf itself says what was expected.
function mostUseful(errors: ErrorObject[]): ErrorObject {
  return errors.find((e) => e.keyword === 'oneOf' && e.instancePath === errors[0]!.instancePath) ?? errors[0]!;
}

function describe(error: ErrorObject): string {
  if (error.keyword === 'additionalProperties') return 'unknown key';
  if (error.keyword === 'oneOf') return `must be ${(error.parentSchema as { description?: string }).description ?? 'one of the allowed forms'}`;
  if (error.keyword === 'enum') return `must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  return error.message ?? 'invalid';
}

// The shape ajv has checked; optional everywhere because defaults fill the gaps.
interface RawConfig {
  listen?: { host?: string; port?: number };
  trustProxy?: boolean | string | number;
  logLevel?: string;
  dataDir?: string;
  masterKey?: Secret;
  database?: { url?: Secret; poolMax?: number };
  storage?: { filesystem?: { path: string } };
  homeservers?: Array<{
    name: string; clientApi: string; signingKeyPath?: string; hostnames?: string[]; maxUploadBytes?: number;
    federation?: { allowOrigins?: string[]; denyOrigins?: string[] };
  }>;
  auth?: { tokenCacheTtlMs?: number; whoamiTimeoutMs?: number; allowQueryStringToken?: boolean };
  media?: {
    maxUploadBytes?: number; legacyFreezeAt?: string | null; pendingUploadExpiryMs?: number;
    maxPendingUploadsPerUser?: number; maxTimeoutMs?: number;
    thumbnails?: { sizes?: ThumbnailSize[]; maxSourceBytes?: number; maxPixels?: number; animated?: boolean };
  };
  federation?: Partial<Omit<Config['federation'], never>>;
}
