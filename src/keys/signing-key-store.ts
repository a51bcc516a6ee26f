// Each hosted homeserver's signing keys in PostgreSQL: imported from its key file at start, encrypted at
// rest, one active key per homeserver; a changed file rotates and the old key is kept with its expiry.
import { timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import { decodeBase64, encodeBase64 } from '../matrix/base64.js';
import { createSigner, lazySigner, publicKeyFromSeed, type Signer } from '../matrix/ed25519.js';
import { REQUESTS_SCOPE } from '../matrix/x-matrix.js';
import { keyId as keyIdOf, readKeyFile, type SigningKey } from './key-files.js';
import type { MasterKey } from './master-key.js';

export interface ActiveSigningKey {
  serverName: string;
  keyId: string;
  publicKey: string;
  scope: string[];
  signer: Signer;
}

export interface StoredSigningKey {
  serverName: string;
  keyId: string;
  publicKey: string;
  scope: string[];
  createdTs: number;
  expiredTs: number | null;
}

export type ImportOutcome = 'unchanged' | 'imported' | 'rotated';

/** A homeserver's key as its key file gives it (the file's first key). */
export interface KeyFileImport {
  serverName: string;
  file: string;
  key: SigningKey;
}

// Rows per INSERT: 6 parameters each, far below PostgreSQL's 65,535.
const INSERT_BATCH = 1000;

interface Row {
  server_name: string;
  key_id: string;
  public_key: string;
  scope: string[];
  encrypted_seed: Buffer;
  created_ts: number;
  expired_ts: number | null;
}

export class SigningKeyStore {
  private readonly active = new Map<string, ActiveSigningKey | null>();

  constructor(private readonly knex: Knex, private readonly masterKey: MasterKey) {}

  /** Makes the first key of `file` the homeserver's active key (Synapse signs with the first one too). */
  async importKeyFile(serverName: string, file: string, now = Date.now()): Promise<ImportOutcome> {
    const { keys } = await readKeyFile(file);
    return this.importKey({ serverName, file, key: keys[0]! }, now);
  }

  /**
   * importKeyFile for every homeserver at once: one query reads every stored key, keys already active stay
   * as they are (their signers are built on first use), homeservers without any key get theirs in batched
   * inserts, and only the rest (rotations, and homeservers another instance inserted first) take the
   * one-by-one locked path. Fails at once when the master key cannot decrypt the stored keys.
   */
  async importKeys(imports: readonly KeyFileImport[], now = Date.now()): Promise<Map<string, ImportOutcome>> {
    const outcomes = new Map<string, ImportOutcome>();
    const first = this.settle(imports, await this.knex('signing_keys'), outcomes, now);
    // One eager unseal: a wrong master key stops start-up here, not at some homeserver's first request.
    const probe = imports.find((item) => outcomes.get(item.serverName) === 'unchanged');
    if (probe !== undefined) await this.unsealActive(probe.serverName);
    const inserted = await this.insertNew(first.fresh, outcomes);
    // Another instance starting at once inserted these first: read them back in one query, usually unchanged.
    const lost = first.fresh.filter(({ row }) => !inserted.has(row.server_name)).map(({ item }) => item);
    const again = lost.length === 0 ? undefined
      : this.settle(lost, await this.knex('signing_keys').whereRaw('server_name = ANY(?)', [lost.map((item) => item.serverName)]), outcomes, now);
    const slow = [...first.slow, ...(again?.slow ?? []), ...(again?.fresh.map(({ item }) => item) ?? [])];
    for (const item of slow) outcomes.set(item.serverName, await this.importKey(item, now));
    return new Map(imports.map((item) => [item.serverName, outcomes.get(item.serverName)!]));
  }

  /** Sorts `imports` by what `rows` hold: unchanged (recorded now), fresh (no key at all yet) or slow (the rest). */
  private settle(imports: readonly KeyFileImport[], rows: Row[], outcomes: Map<string, ImportOutcome>, now: number) {
    const stored = new Map<string, Row[]>();
    for (const row of rows) {
      const list = stored.get(row.server_name);
      if (list) list.push(row);
      else stored.set(row.server_name, [row]);
    }
    const fresh: Array<{ item: KeyFileImport; row: Row }> = [];
    const slow: KeyFileImport[] = [];
    for (const item of imports) {
      const own = stored.get(item.serverName);
      const current = own?.find((r) => r.expired_ts === null);
      if (current && current.key_id === keyIdOf(item.key) && this.holdsSeed(current, item.key.seed)) {
        this.active.set(item.serverName, this.lazy(current));
        outcomes.set(item.serverName, 'unchanged');
      } else if (own) {
        slow.push(item);
      } else {
        fresh.push({ item, row: this.newRow(item.serverName, item.key, encodeBase64(publicKeyFromSeed(item.key.seed)), now) });
      }
    }
    return { fresh, slow };
  }

  /**
   * Whether `row` holds `seed`: decrypting costs a fifth of deriving the public key, and a restart compares
   * thousands. A row that does not decrypt is compared by public key, so that it fails only at its first signature.
   */
  private holdsSeed(row: Row, seed: Uint8Array): boolean {
    let stored: Buffer;
    try {
      stored = this.masterKey.decrypt(row.encrypted_seed, context(row.server_name, row.key_id));
    } catch {
      return row.public_key === encodeBase64(publicKeyFromSeed(seed));
    }
    const same = stored.length === seed.length && timingSafeEqual(stored, seed);
    stored.fill(0);
    return same;
  }

  private async unsealActive(serverName: string): Promise<void> {
    this.active.delete(serverName);
    await this.activeKey(serverName);
  }

  /** Inserts in server-name order, so two instances inserting at once wait on each other rather than deadlock. */
  private async insertNew(fresh: ReadonlyArray<{ row: Row }>, outcomes: Map<string, ImportOutcome>): Promise<Set<string>> {
    const inserted = new Set<string>();
    const sorted = fresh.map(({ row }) => row).sort((a, b) => (a.server_name < b.server_name ? -1 : a.server_name > b.server_name ? 1 : 0));
    for (let i = 0; i < sorted.length; i += INSERT_BATCH) {
      // A homeserver another instance inserted meanwhile is skipped here and read back by the caller.
      const returned: Array<{ server_name: string }> = await this.knex('signing_keys')
        .insert(sorted.slice(i, i + INSERT_BATCH).map(({ expired_ts: _, ...row }) => row))
        .onConflict()
        .ignore()
        .returning('server_name');
      for (const r of returned) inserted.add(r.server_name);
    }
    for (const row of sorted) {
      if (!inserted.has(row.server_name)) continue;
      this.active.set(row.server_name, this.lazy(row));
      outcomes.set(row.server_name, 'imported');
    }
    return inserted;
  }

  private newRow(serverName: string, key: SigningKey, publicKey: string, now: number): Row {
    const keyId = keyIdOf(key);
    const encrypted = this.masterKey.encrypt(key.seed, context(serverName, keyId));
    return { server_name: serverName, key_id: keyId, public_key: publicKey, scope: [REQUESTS_SCOPE], encrypted_seed: encrypted, created_ts: now, expired_ts: null };
  }

  private async importKey({ serverName, file, key }: KeyFileImport, now: number): Promise<ImportOutcome> {
    const keyId = keyIdOf(key);
    const publicKey = encodeBase64(publicKeyFromSeed(key.seed));
    const outcome = await this.knex.transaction(async (trx) => {
      // Serialises instances that start together against the same database.
      await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [`signing_keys:${serverName}`]);
      const rows: Row[] = await trx('signing_keys').where({ server_name: serverName });
      const current = rows.find((r) => r.expired_ts === null);
      if (current?.key_id === keyId && current.public_key === publicKey) return 'unchanged' as const;
      const reused = rows.find((r) => r.key_id === keyId);
      if (reused && reused.public_key !== publicKey) {
        throw new Error(`${file}: key ID ${keyId} was already used by ${serverName} for a different key; give the new key a new version`);
      }
      if (current) await trx('signing_keys').where({ server_name: serverName, key_id: current.key_id }).update({ expired_ts: now });
      if (reused) {
        await trx('signing_keys').where({ server_name: serverName, key_id: keyId }).update({ expired_ts: null });
      } else {
        const { expired_ts: _, ...row } = this.newRow(serverName, key, publicKey, now);
        await trx('signing_keys').insert(row);
      }
      return current ? ('rotated' as const) : ('imported' as const);
    });
    this.active.delete(serverName);
    return outcome;
  }

  /** The key that signs this homeserver's outbound requests, or undefined when it has none. */
  async activeKey(serverName: string): Promise<ActiveSigningKey | undefined> {
    if (!this.active.has(serverName)) {
      const row: Row | undefined = await this.knex('signing_keys').where({ server_name: serverName }).whereNull('expired_ts').first();
      this.active.set(serverName, row ? this.unseal(row) : null);
    }
    return this.active.get(serverName) ?? undefined;
  }

  /** Every key, active and expired, without private material. */
  async list(): Promise<StoredSigningKey[]> {
    const rows: Row[] = await this.knex('signing_keys').orderBy([{ column: 'server_name' }, { column: 'created_ts' }]);
    return rows.map((r) => ({
      serverName: r.server_name,
      keyId: r.key_id,
      publicKey: r.public_key,
      scope: r.scope,
      createdTs: r.created_ts,
      expiredTs: r.expired_ts,
    }));
  }

  /** The key with a signer that decrypts its seed on the first signature. */
  private lazy(row: Row): ActiveSigningKey {
    const what = `signing key ${row.key_id} of ${row.server_name}`;
    const signer = lazySigner(decodeBase64(row.public_key), () => this.masterKey.decrypt(row.encrypted_seed, context(row.server_name, row.key_id)), what);
    return { serverName: row.server_name, keyId: row.key_id, publicKey: row.public_key, scope: row.scope, signer };
  }

  private unseal(row: Row): ActiveSigningKey {
    const seed = this.masterKey.decrypt(row.encrypted_seed, context(row.server_name, row.key_id));
    const signer = createSigner(seed);
    seed.fill(0);
    if (encodeBase64(signer.publicKey) !== row.public_key) throw new Error(`signing key ${row.key_id} of ${row.server_name}: stored public key does not match`);
    return { serverName: row.server_name, keyId: row.key_id, publicKey: row.public_key, scope: row.scope, signer };
  }
}

function context(serverName: string, keyId: string): string {
  return `signing_keys:${serverName}:${keyId}`;
}
