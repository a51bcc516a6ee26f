// Each hosted homeserver's signing keys in PostgreSQL: imported from its key file at start, encrypted at
// rest, one active key per homeserver; a changed file rotates and the old key is kept with its expiry.
import type { Knex } from 'knex';
import { encodeBase64 } from '../matrix/base64.js';
import { createSigner, publicKeyFromSeed, type Signer } from '../matrix/ed25519.js';
import { REQUESTS_SCOPE } from '../matrix/x-matrix.js';
import { readKeyFile } from './key-files.js';
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
    const key = keys[0]!;
    const keyId = `ed25519:${key.version}`;
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
        await trx('signing_keys').insert({
          server_name: serverName,
          key_id: keyId,
          public_key: publicKey,
          scope: [REQUESTS_SCOPE],
          encrypted_seed: this.masterKey.encrypt(key.seed, context(serverName, keyId)),
          created_ts: now,
        });
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
