// The keyring of remote servers' public keys, for verifying their X-Matrix / X-MSC4100-Scoped requests:
// memory, then PostgreSQL, then a fetch from the server itself or from configured notaries. A fetch
// happens only when a key is unknown or expired, at most once per refetch interval per server, and
// concurrent lookups for one server share it.
import type { Knex } from 'knex';
import type { Config, NotaryConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { LruCache, type CacheLookups } from '../lru-cache.js';
import { encodeBase64, decodeBase64 } from '../matrix/base64.js';
import { REQUESTS_SCOPE } from '../matrix/x-matrix.js';
import {
  NOTARY_QUERY_PATH,
  parseNotaryResponse,
  parseServerKeys,
  SCOPED_NOTARY_QUERY_PATH,
  SCOPED_SERVER_KEYS_PATH,
  SERVER_KEYS_PATH,
  type ServerKeySet,
} from './server-keys.js';

/** GETs `path` on `serverName` (after discovery) and returns the parsed JSON body. */
export type ServerKeyFetcher = (serverName: string, path: string) => Promise<unknown>;
/** POSTs `body` as JSON to `path` on the notary and returns the parsed JSON body. */
export type NotaryFetcher = (notary: NotaryConfig, body: object, path: string) => Promise<unknown>;

export interface KeyLookupOptions {
  /** True: MSC4100 keys scoped for m.requests (X-MSC4100-Scoped); false: v2 keys (X-Matrix). */
  readonly scoped: boolean;
}

export interface KeyringOptions {
  readonly knex: Knex;
  readonly federation: Pick<Config['federation'], 'notaries' | 'notaryFirst' | 'keyRefetchIntervalMs'>;
  readonly fetchServerKeys: ServerKeyFetcher;
  readonly queryNotary: NotaryFetcher;
  /** Bound on each fetch, so that verifying a request never hangs on a silent key server. */
  readonly fetchTimeoutMs: number;
  readonly log?: Logger;
  readonly now?: () => number;
  /** Whether each lookup found a usable key in memory (metrics). */
  readonly cacheLookups?: CacheLookups;
}

/** A key that may verify requests until validUntilTs. */
export interface UsableKey {
  readonly publicKey: Uint8Array;
  readonly validUntilTs: number;
}

interface CachedKey {
  publicKey: Uint8Array;
  scopes: readonly string[] | null;
  validUntilTs: number;
  expiredTs: number | null;
}

interface Row {
  server_name: string;
  scoped: boolean;
  key_id: string;
  public_key: string;
  scopes: string[] | null;
  valid_until_ts: number;
  expired_ts: number | null;
  fetched_ts: number;
  source: string;
}

/**
 * Servers remembered in memory; beyond it the least recently used go (the database still has their keys).
 * Bounded: hostile requests naming endless invented origins must not grow memory without end.
 */
const MEMORY_LIMIT = 10_000;

export class Keyring {
  private readonly memory = new LruCache<string, Map<string, CachedKey>>(MEMORY_LIMIT);
  /** When keys of a server were last fetched or attempted, by this instance or (via the DB) any. */
  private readonly lastFetch = new LruCache<string, number>(MEMORY_LIMIT);
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly now: () => number;

  constructor(private readonly options: KeyringOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * The public key `keyId` of `serverName` if it may verify a request now: listed in verify_keys (never
   * old_verify_keys), within its capped validity, and for scoped lookups carrying the m.requests scope.
   */
  async getVerifyKey(serverName: string, keyId: string, options: KeyLookupOptions): Promise<Uint8Array | undefined> {
    return (await this.verifyKey(serverName, keyId, options))?.publicKey;
  }

  /** As getVerifyKey, with the time until which the key may verify. */
  async verifyKey(serverName: string, keyId: string, options: KeyLookupOptions): Promise<UsableKey | undefined> {
    const slot = slotOf(serverName, options.scoped);
    const cached = this.usable(slot, keyId, options.scoped);
    this.options.cacheLookups?.(cached !== undefined);
    if (cached) return cached;
    let flight = this.inflight.get(slot);
    if (!flight) {
      flight = this.refresh(serverName, options.scoped, keyId).finally(() => this.inflight.delete(slot));
      this.inflight.set(slot, flight);
    }
    await flight;
    return this.usable(slot, keyId, options.scoped);
  }

  private usable(slot: string, keyId: string, scoped: boolean): CachedKey | undefined {
    const key = this.memory.get(slot)?.get(keyId);
    if (!key || key.expiredTs !== null || key.validUntilTs <= this.now()) return undefined;
    if (scoped && !key.scopes?.includes(REQUESTS_SCOPE)) return undefined;
    return key;
  }

  /** Reloads the server's keys from the database, then fetches them if the key is still missing and the rate limit allows. */
  private async refresh(serverName: string, scoped: boolean, keyId: string): Promise<void> {
    const slot = slotOf(serverName, scoped);
    await this.loadFromDatabase(serverName, scoped);
    if (this.usable(slot, keyId, scoped)) return;
    const now = this.now();
    const last = this.lastFetch.get(slot);
    if (last !== undefined && now - last < this.options.federation.keyRefetchIntervalMs) return;
    this.lastFetch.set(slot, now);
    for (const source of this.sources(serverName, scoped, keyId)) {
      let sets: ServerKeySet[];
      try {
        sets = await withTimeout(source.fetch(), this.options.fetchTimeoutMs, `${source.name} timed out`);
      } catch (error) {
        this.options.log?.warn({ serverName, scoped, source: source.name, reason: (error as Error).message }, 'fetching server keys failed');
        continue;
      }
      for (const set of sets) await this.store(set, scoped, source.name, now);
      if (this.usable(slot, keyId, scoped)) return;
    }
  }

  /** The direct fetch and each notary, in the configured order. */
  private sources(serverName: string, scoped: boolean, keyId: string): Array<{ name: string; fetch(): Promise<ServerKeySet[]> }> {
    const parse = { serverName, scoped };
    const direct = {
      name: 'direct',
      fetch: async () => {
        const json = await this.options.fetchServerKeys(serverName, scoped ? SCOPED_SERVER_KEYS_PATH : SERVER_KEYS_PATH);
        return [parseServerKeys(json, { ...parse, now: this.now() })];
      },
    };
    const notaries = this.options.federation.notaries.map((notary) => ({
      name: notary.serverName,
      fetch: async () => {
        const body = { server_keys: { [serverName]: { [keyId]: { minimum_valid_until_ts: this.now() } } } };
        const json = await this.options.queryNotary(notary, body, scoped ? SCOPED_NOTARY_QUERY_PATH : NOTARY_QUERY_PATH);
        return parseNotaryResponse(json, notary, { ...parse, now: this.now() });
      },
    }));
    return this.options.federation.notaryFirst ? [...notaries, direct] : [direct, ...notaries];
  }

  private async loadFromDatabase(serverName: string, scoped: boolean): Promise<void> {
    const rows: Row[] = await this.options.knex('remote_server_keys').where({ server_name: serverName, scoped });
    const slot = slotOf(serverName, scoped);
    const keys = this.slotKeys(slot);
    for (const row of rows) keys.set(row.key_id, cachedFromRow(row));
    // Another instance's recent fetch counts against the rate limit too.
    const fetched = Math.max(...rows.map((r) => r.fetched_ts), this.lastFetch.get(slot) ?? -Infinity);
    if (fetched > -Infinity) this.lastFetch.set(slot, fetched);
  }

  private async store(set: ServerKeySet, scoped: boolean, source: string, fetchedTs: number): Promise<void> {
    if (set.keys.length === 0) return;
    const rows = set.keys.map((key) => ({
      server_name: set.serverName,
      scoped,
      key_id: key.keyId,
      public_key: encodeBase64(key.publicKey),
      scopes: key.scopes === null ? null : [...key.scopes],
      valid_until_ts: set.validUntilTs,
      expired_ts: key.expiredTs,
      fetched_ts: fetchedTs,
      source,
    }));
    await this.options.knex('remote_server_keys').insert(rows).onConflict(['server_name', 'scoped', 'key_id']).merge();
    const keys = this.slotKeys(slotOf(set.serverName, scoped));
    for (const row of rows) keys.set(row.key_id, cachedFromRow(row));
  }

  private slotKeys(slot: string): Map<string, CachedKey> {
    let keys = this.memory.get(slot);
    if (!keys) {
      keys = new Map();
      this.memory.set(slot, keys);
    }
    return keys;
  }
}

function slotOf(serverName: string, scoped: boolean): string {
  return `${scoped ? 'scoped' : 'v2'} ${serverName}`;
}

function cachedFromRow(row: Pick<Row, 'public_key' | 'scopes' | 'valid_until_ts' | 'expired_ts'>): CachedKey {
  return {
    publicKey: new Uint8Array(decodeBase64(row.public_key)),
    scopes: row.scopes,
    validUntilTs: row.valid_until_ts,
    expiredTs: row.expired_ts,
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
