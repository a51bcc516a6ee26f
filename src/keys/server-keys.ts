// Validating server key responses (server-server API "Retrieving server keys", MSC4100 scoped keys): the
// object must name the server asked, be self-signed by one of its own verify_keys, and its validity is
// capped at 7 days. Notary answers must also carry a signature by a notary key we were configured with.
import type { NotaryConfig } from '../config/config.js';
import { decodeBase64 } from '../matrix/base64.js';
import { PUBLIC_KEY_LENGTH } from '../matrix/ed25519.js';
import { verifyJsonSignature } from '../matrix/signed-json.js';

export const SERVER_KEYS_PATH = '/_matrix/key/v2/server';
export const SCOPED_SERVER_KEYS_PATH = '/_matrix/key/unstable/org.matrix.msc4100/server';
export const NOTARY_QUERY_PATH = '/_matrix/key/v2/query';
export const SCOPED_NOTARY_QUERY_PATH = '/_matrix/key/unstable/org.matrix.msc4100/query';

/** "Servers MUST use the lesser of this field and 7 days into the future." */
export const MAX_KEY_VALIDITY_MS = 7 * 24 * 3600_000;

// The spec allows [a-zA-Z0-9_] in a key version; only ed25519 keys exist.
const ED25519_KEY_ID = /^ed25519:[A-Za-z0-9_]+$/;

export interface RemoteKey {
  readonly keyId: string;
  readonly publicKey: Uint8Array;
  /** MSC4100 scopes; null for keys of the v2 endpoint. */
  readonly scopes: readonly string[] | null;
  /** Set for old_verify_keys entries, which never authenticate requests. */
  readonly expiredTs: number | null;
}

export interface ServerKeySet {
  readonly serverName: string;
  /** min(valid_until_ts, now + 7 days) */
  readonly validUntilTs: number;
  readonly keys: readonly RemoteKey[];
}

export class KeyResponseError extends Error {
  constructor(serverName: string, reason: string) {
    super(`keys of ${serverName}: ${reason}`);
    this.name = 'KeyResponseError';
  }
}

export interface ParseOptions {
  /** The server whose keys were asked for. */
  readonly serverName: string;
  /** True for the MSC4100 endpoints, whose every key carries a scope array. */
  readonly scoped: boolean;
  readonly now: number;
}

/** Validates one server keys object (as served by the server itself or inside a notary answer). */
export function parseServerKeys(json: unknown, options: ParseOptions): ServerKeySet {
  const { serverName, scoped, now } = options;
  const fail = (reason: string) => new KeyResponseError(serverName, reason);
  if (!isRecord(json)) throw fail('the response is not a JSON object');
  if (json.server_name !== serverName) throw fail(`server_name is ${JSON.stringify(json.server_name)}, not the server asked`);
  const validUntil = json.valid_until_ts;
  if (typeof validUntil !== 'number' || !Number.isSafeInteger(validUntil)) throw fail('valid_until_ts is not an integer');
  if (!isRecord(json.verify_keys)) throw fail('verify_keys is not an object');
  if (json.old_verify_keys !== undefined && !isRecord(json.old_verify_keys)) throw fail('old_verify_keys is not an object');

  const keys: RemoteKey[] = [];
  const current = new Map<string, Uint8Array>();
  for (const [keyId, entry] of Object.entries(json.verify_keys)) {
    const key = parseKeyEntry(keyId, entry, scoped, false, fail);
    if (key === null) continue;
    keys.push(key);
    current.set(keyId, key.publicKey);
  }
  for (const [keyId, entry] of Object.entries(json.old_verify_keys ?? {})) {
    const key = parseKeyEntry(keyId, entry, scoped, true, fail);
    // A key both current and old is treated as old: the server has said it stopped using it.
    if (key !== null && !current.has(keyId)) keys.push(key);
  }
  checkSelfSignature(json, serverName, current, fail);
  return { serverName, validUntilTs: Math.min(validUntil, now + MAX_KEY_VALIDITY_MS), keys };
}

/**
 * Synapse's rule: every signature under the server's name by one of its verify_keys must verify, and
 * there must be at least one. Signatures by other key IDs (e.g. old keys) are ignored.
 */
function checkSelfSignature(json: Record<string, unknown>, serverName: string, current: Map<string, Uint8Array>, fail: (r: string) => Error): void {
  const signatures = json.signatures;
  if (!isRecord(signatures)) throw fail('signatures is not an object');
  const own = signatures[serverName];
  if (!Object.hasOwn(signatures, serverName) || !isRecord(own)) throw fail('the response is not signed by the server');
  let verified = 0;
  for (const keyId of Object.keys(own)) {
    const publicKey = current.get(keyId);
    if (publicKey === undefined) continue;
    if (!verifyJsonSignature(json, serverName, keyId, publicKey)) throw fail(`the self-signature by ${keyId} does not verify`);
    verified++;
  }
  if (verified === 0) throw fail('the response is not signed by any of its verify_keys');
}

/** The key of one verify_keys/old_verify_keys entry; null for algorithms we do not know (ignored). */
function parseKeyEntry(keyId: string, entry: unknown, scoped: boolean, old: boolean, fail: (r: string) => Error): RemoteKey | null {
  if (!keyId.startsWith('ed25519:')) return null;
  if (!ED25519_KEY_ID.test(keyId)) throw fail(`invalid key id ${JSON.stringify(keyId.slice(0, 80))}`);
  if (!isRecord(entry) || typeof entry.key !== 'string') throw fail(`key ${keyId} has no "key"`);
  let publicKey: Uint8Array;
  try {
    publicKey = new Uint8Array(decodeBase64(entry.key));
  } catch {
    throw fail(`key ${keyId} is not Base64`);
  }
  if (publicKey.length !== PUBLIC_KEY_LENGTH) throw fail(`key ${keyId} is not a ${PUBLIC_KEY_LENGTH}-byte ed25519 key`);
  let scopes: string[] | null = null;
  if (scoped) {
    if (!Array.isArray(entry.scope) || !entry.scope.every((s) => typeof s === 'string')) throw fail(`key ${keyId} has no scope array`);
    scopes = entry.scope as string[];
  }
  let expiredTs: number | null = null;
  if (old) {
    if (typeof entry.expired_ts !== 'number' || !Number.isSafeInteger(entry.expired_ts)) throw fail(`old key ${keyId} has no expired_ts`);
    expiredTs = entry.expired_ts;
  }
  return { keyId, publicKey, scopes, expiredTs };
}

/**
 * The entries of a notary answer (`{"server_keys": [...]}`) that describe `serverName`, each checked for
 * a notary signature by a configured key and for its own self-signature. Entries for other servers are
 * ignored: the notary may return more than was asked.
 */
export function parseNotaryResponse(json: unknown, notary: NotaryConfig, options: ParseOptions): ServerKeySet[] {
  const fail = (reason: string) => new KeyResponseError(options.serverName, `notary ${notary.serverName}: ${reason}`);
  if (!isRecord(json) || !Array.isArray(json.server_keys)) throw fail('the answer has no server_keys array');
  const sets: ServerKeySet[] = [];
  for (const entry of json.server_keys) {
    if (!isRecord(entry) || entry.server_name !== options.serverName) continue;
    checkNotarySignature(entry, notary, fail);
    sets.push(parseServerKeys(entry, options));
  }
  return sets;
}

/** Every signature by a configured notary key must verify, and at least one must be there. */
function checkNotarySignature(entry: Record<string, unknown>, notary: NotaryConfig, fail: (r: string) => Error): void {
  const signatures = entry.signatures;
  const byNotary = isRecord(signatures) && Object.hasOwn(signatures, notary.serverName) ? signatures[notary.serverName] : undefined;
  if (!isRecord(byNotary)) throw fail('an entry is not signed by the notary');
  let verified = 0;
  for (const keyId of Object.keys(byNotary)) {
    if (!Object.hasOwn(notary.verifyKeys, keyId)) continue;
    let publicKey: Uint8Array;
    try {
      publicKey = new Uint8Array(decodeBase64(notary.verifyKeys[keyId]!));
    } catch {
      continue;
    }
    if (!verifyJsonSignature(entry, notary.serverName, keyId, publicKey)) throw fail(`the notary signature by ${keyId} does not verify`);
    verified++;
  }
  if (verified === 0) throw fail('an entry is not signed by any configured notary key');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
