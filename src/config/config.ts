// YAML -> validated, typed config with defaults filled in. Every error names the file, the path in it and why.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import type { FromSchema } from 'json-schema-to-ts';
import yaml from 'js-yaml';
import { isValidServerName } from '../matrix/server-name.js';
import { type quotas, type rateLimits } from './schema-limits.js';
import type { fileDatastore, s3Datastore } from './schema-datastores.js';
import { configSchema, MEDIA_KINDS, type homeserver, type notary, type secret, type thumbnailSize } from './schema.js';

export { MEDIA_KINDS };

/** The config as ajv leaves it: checked, static defaults filled in, nothing resolved yet. */
type Validated = FromSchema<typeof configSchema>;

export type Secret = FromSchema<typeof secret>;
export type ThumbnailSize = FromSchema<typeof thumbnailSize>;
export type NotaryConfig = FromSchema<typeof notary>;
export type MediaKind = (typeof MEDIA_KINDS)[number];
export type QuotasConfig = FromSchema<typeof quotas>;
export type RateLimitsConfig = FromSchema<typeof rateLimits>;
export type MetricsConfig = Validated['metrics'];

// The resolved parts: the schema's shapes, with the few fields that are computed after validation.
export interface HomeserverConfig extends Omit<FromSchema<typeof homeserver>, 'maxUploadBytes' | 'quotas' | 'rateLimits'> {
  /** Defaults to media.maxUploadBytes. */
  maxUploadBytes: number;
  /** Its own block, else the top-level one. */
  quotas: QuotasConfig;
  rateLimits: RateLimitsConfig;
}
type FileDatastoreSchema = FromSchema<typeof fileDatastore>;
/** internalPrefix resolved: x-sendfile's defaults to the datastore's path. */
export type ProxyOffloadConfig = Omit<NonNullable<FileDatastoreSchema['opts']['proxyOffload']>, 'internalPrefix'> & { internalPrefix: string };
/** `all` expanded in forKinds; a file datastore's opts.path is absolute. */
export type DatastoreConfig =
  | Omit<FileDatastoreSchema, 'forKinds' | 'opts'> & { forKinds: MediaKind[]; opts: { path: string; proxyOffload?: ProxyOffloadConfig } }
  | Omit<FromSchema<typeof s3Datastore>, 'forKinds'> & { forKinds: MediaKind[] };
export type ListenConfig = Validated['listen'];
export type DatabaseConfig = Validated['database'];
export type AuthConfig = Validated['auth'];
export type AdminConfig = Validated['admin'];
export type RetentionConfig = Validated['retention'];
export type ThumbnailsConfig = Validated['media']['thumbnails'];
export interface MediaConfig extends Omit<Validated['media'], 'legacyFreezeAt'> {
  /** Media stored after this is not served on the unauthenticated endpoints; null: no freeze. */
  legacyFreezeAt: Date | null;
}
export interface FederationConfig extends Omit<Validated['federation'], 'remoteMaxBytes'> {
  /** Defaults to media.maxUploadBytes. */
  remoteMaxBytes: number;
}

export interface Config extends Omit<Validated, 'datastores' | 'homeservers' | 'media' | 'federation'> {
  /** The file it came from, for messages; undefined when running on built-in defaults. */
  source?: string;
  /** Never empty; every media kind is taken by at least one. */
  datastores: DatastoreConfig[];
  homeservers: HomeserverConfig[];
  media: MediaConfig;
  federation: FederationConfig;
}

export class ConfigError extends Error {
  constructor(file: string, path: string, reason: string) {
    super(`${file}${path ? ` at ${path}` : ''}: ${reason}`);
    this.name = 'ConfigError';
  }
}

const DEFAULTS = '<defaults>';
/** Far above a 10,000-homeserver config (about 50,000). */
const MAX_CONFIG_NODES = 1_000_000;
// optimize: false: the compiled code's clean-up passes cost ~40% of compiling, at every start, and save nothing measurable in one validation.
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true, useDefaults: true, discriminator: true, code: { optimize: false } });
const validate = ajv.compile<Validated>(configSchema);

/** Reads and validates a YAML config file; relative paths in it are taken from the file's folder. */
export function loadConfigFile(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, '', `cannot read the file (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  let raw: unknown;
  try {
    // YAML 1.2's core schema: `yes` is a string (YAML 1.1 made it true), 017 is seventeen, no timestamps.
    raw = yaml.load(text, { schema: yaml.CORE_SCHEMA });
  } catch (error) {
    const { reason, mark } = error as yaml.YAMLException;
    throw new ConfigError(file, mark ? `line ${mark.line + 1}, column ${mark.column + 1}` : '', `invalid YAML: ${reason ?? String(error)}`);
  }
  assertFewNodes(raw, file);
  return validateAndResolve(raw ?? {}, file); // freshly parsed: no one else holds it, so no copy
}

/**
 * An alias is a shared reference: nested ones ("billion laughs") would make validation walk billions of
 * nodes, and one inside its own anchor forever. Counted without recursion, so a cycle cannot blow the stack.
 */
function assertFewNodes(raw: unknown, file: string): void {
  const pending: unknown[] = [raw];
  for (let seen = 0; pending.length > 0; seen++) {
    if (seen >= MAX_CONFIG_NODES) throw new ConfigError(file, '', `invalid YAML: more than ${MAX_CONFIG_NODES} values once aliases are expanded (or an alias inside its own anchor)`);
    const value = pending.pop();
    if (value !== null && typeof value === 'object') for (const child of Object.values(value)) pending.push(child); // no spread: a long list would overflow the call's arguments
  }
}

/** Validates a parsed config object and fills in defaults. `file` names it in errors and anchors relative paths. */
export function buildConfig(raw: unknown, file = DEFAULTS): Config {
  return validateAndResolve(structuredClone(raw), file); // ajv writes the defaults into it; the caller's object stays as it was
}

function validateAndResolve(input: unknown, file: string): Config {
  if (!validate(input)) {
    const error = mostUseful(validate.errors!);
    throw new ConfigError(file, errorPath(error), describe(error));
  }
  return resolveConfig(input, file);
}

/** The defaults that depend on other values (the file's folder, dataDir, media.maxUploadBytes), and the checks ajv cannot make. */
function resolveConfig(input: Validated, file: string): Config {
  const base = file === DEFAULTS ? process.cwd() : dirname(resolve(file));
  const path = (p: string) => resolve(base, p);
  const anchorSecret = (s: Secret | undefined) => (s !== undefined && typeof s === 'object' && 'file' in s ? { file: path(s.file) } : s);
  const dataDir = path(input.dataDir);
  const { maxUploadBytes, legacyFreezeAt } = input.media;
  const { remoteMaxBytes, caFile } = input.federation;

  const homeservers = input.homeservers.map((hs, i): HomeserverConfig => {
    checkServerNames(hs.name, hs.hostnames, `/homeservers/${i}`, file);
    if (hs.clientApi === undefined && hs.staticAccessTokens === undefined) {
      throw new ConfigError(file, `/homeservers/${i}`, 'needs clientApi (to check access tokens) or staticAccessTokens, or nobody can use it');
    }
    return {
      ...hs,
      clientApi: hs.clientApi?.replace(/\/+$/, ''),
      staticAccessTokens: anchorSecret(hs.staticAccessTokens) as HomeserverConfig['staticAccessTokens'],
      signingKeyPath: hs.signingKeyPath === undefined ? undefined : path(hs.signingKeyPath),
      adminApiToken: anchorSecret(hs.adminApiToken),
      maxUploadBytes: hs.maxUploadBytes ?? maxUploadBytes,
      quotas: (hs.quotas as QuotasConfig | undefined) ?? input.quotas,
      rateLimits: (hs.rateLimits as RateLimitsConfig | undefined) ?? input.rateLimits,
    };
  });
  assertUniqueHosts(homeservers, file);
  const datastores = (input.datastores ?? [{ id: 'default', type: 'file', forKinds: ['all'], opts: { path: resolve(dataDir, 'media') } }])
    .map((ds, i): DatastoreConfig => ds.type === 'file'
      ? { ...ds, forKinds: expandKinds(ds.forKinds), opts: fileOpts(ds.opts, path, anchorSecret, `/datastores/${i}/opts/proxyOffload`, file) }
      : { ...ds, forKinds: expandKinds(ds.forKinds), opts: { ...ds.opts, accessKeyId: anchorSecret(ds.opts.accessKeyId), accessSecret: anchorSecret(ds.opts.accessSecret) } });
  assertDatastoresCover(datastores, homeservers, file);
  if (typeof legacyFreezeAt === 'string' && Number.isNaN(Date.parse(legacyFreezeAt))) {
    throw new ConfigError(file, '/media/legacyFreezeAt', `"${legacyFreezeAt}" is not a date (use ISO 8601, e.g. 2024-09-04T00:00:00Z)`);
  }
  return {
    ...input,
    source: file === DEFAULTS ? undefined : resolve(file),
    dataDir,
    masterKey: anchorSecret(input.masterKey),
    database: { ...input.database, url: anchorSecret(input.database.url) },
    sharedSecretAuth: { token: anchorSecret(input.sharedSecretAuth.token) },
    datastores,
    homeservers,
    media: { ...input.media, legacyFreezeAt: legacyFreezeAt === null ? null : new Date(legacyFreezeAt) },
    federation: { ...input.federation, remoteMaxBytes: remoteMaxBytes ?? maxUploadBytes, caFile: caFile === undefined ? undefined : path(caFile) },
  };
}

function fileOpts(opts: FileDatastoreSchema['opts'], path: (p: string) => string, anchor: (s: Secret) => Secret | undefined, at: string, file: string): Extract<DatastoreConfig, { type: 'file' }>['opts'] {
  const root = path(opts.path);
  const offload = opts.proxyOffload;
  if (offload === undefined) return { path: root };
  if (offload.mode === 'x-accel-redirect' && offload.internalPrefix === undefined) {
    throw new ConfigError(file, `${at}/internalPrefix`, 'x-accel-redirect needs the internal location that nginx maps to opts.path');
  }
  if (offload.mode !== 'x-accel-redirect' && offload.secureLink !== undefined) {
    throw new ConfigError(file, `${at}/secureLink`, 'secureLink is checked by nginx: it needs mode x-accel-redirect');
  }
  const secureLink = offload.secureLink && { ...offload.secureLink, secret: anchor(offload.secureLink.secret)! };
  return { path: root, proxyOffload: { ...offload, internalPrefix: offload.internalPrefix ?? root, secureLink } };
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

function expandKinds(forKinds: Array<MediaKind | 'all'>): MediaKind[] {
  return forKinds.includes('all') ? [...MEDIA_KINDS] : forKinds.filter((kind): kind is MediaKind => kind !== 'all');
}

function checkServerNames(name: string, hostnames: string[], at: string, file: string): void {
  if (!isValidServerName(name)) throw new ConfigError(file, `${at}/name`, `"${name}" is not a valid Matrix server name`);
  for (const [j, h] of hostnames.entries()) {
    if (!isValidServerName(h)) throw new ConfigError(file, `${at}/hostnames/${j}`, `"${h}" is not a valid host name`);
  }
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

function assertDatastoresCover(datastores: DatastoreConfig[], homeservers: HomeserverConfig[], file: string): void {
  const seen = new Map<string, number>();
  const names = new Set(homeservers.map((hs) => hs.name));
  datastores.forEach((ds, i) => {
    const other = seen.get(ds.id);
    if (other !== undefined) throw new ConfigError(file, `/datastores/${i}/id`, `"${ds.id}" is already used by datastore ${other}`);
    seen.set(ds.id, i);
    const unknownHs = ds.forHomeservers?.find((name) => !names.has(name));
    if (unknownHs !== undefined) throw new ConfigError(file, `/datastores/${i}/forHomeservers`, `"${unknownHs}" is not a configured homeserver`);
    if (ds.type === 's3') checkS3Opts(ds.opts, `/datastores/${i}/opts`, file);
  });
  // Remote media of no hosted homeserver, and homeservers added later, need a datastore open to all.
  const uncovered = MEDIA_KINDS.filter((kind) => !datastores.some((ds) => ds.forKinds.includes(kind) && !ds.forHomeservers));
  if (uncovered.length > 0) {
    throw new ConfigError(file, '/datastores', `no datastore takes ${uncovered.join(', ')} for every homeserver (add it to a forKinds without forHomeservers, or use all)`);
  }
}

function checkS3Opts(opts: Extract<DatastoreConfig, { type: 's3' }>['opts'], at: string, file: string): void {
  if ((opts.accessKeyId === undefined) !== (opts.accessSecret === undefined)) {
    throw new ConfigError(file, at, 'accessKeyId and accessSecret go together (or leave both unset for the AWS SDK\'s own credentials)');
  }
  if (opts.redirect === 'publicBaseUrl' && opts.publicBaseUrl === undefined) throw new ConfigError(file, `${at}/publicBaseUrl`, 'redirect: publicBaseUrl needs a publicBaseUrl');
  if (opts.kmsKeyId !== undefined && opts.sse !== 'aws:kms') throw new ConfigError(file, `${at}/kmsKeyId`, 'kmsKeyId needs sse: aws:kms');
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
