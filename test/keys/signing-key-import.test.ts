// Start-up's bulk import: one read of every stored key, batched inserts for new homeservers, signers built
// on first use. Signatures are compared with @noble/curves' for the same seed.
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { Database } from '../../src/db/database.js';
import { generateSigningKey, type SigningKey } from '../../src/keys/key-files.js';
import { MasterKey } from '../../src/keys/master-key.js';
import { SigningKeyStore, type KeyFileImport } from '../../src/keys/signing-key-store.js';
import { encodeBase64 } from '../../src/matrix/base64.js';
import { openTestDatabase, openTwoDatabases } from '../helpers/database.js';

const masterKey = MasterKey.parse(randomBytes(32).toString('hex'), 'test');
const message = Buffer.from('{"method":"GET","uri":"/_matrix/federation/v1/media/download/abc"}');

function imports(prefix: string, count: number): KeyFileImport[] {
  return Array.from({ length: count }, (_, i) => ({ serverName: `${prefix}${i}.example`, file: `${prefix}${i}.key`, key: generateSigningKey() }));
}

/** A copy: importKeys is given seeds it may not keep; the test keeps its own. */
function copy(items: KeyFileImport[]): KeyFileImport[] {
  return items.map((item) => ({ ...item, key: { version: item.key.version, seed: Uint8Array.from(item.key.seed) } }));
}

async function expectSignsAsNoble(store: SigningKeyStore, serverName: string, key: SigningKey): Promise<void> {
  const active = (await store.activeKey(serverName))!;
  expect(active.keyId).toBe(`ed25519:${key.version}`);
  expect(active.publicKey).toBe(encodeBase64(ed25519.getPublicKey(key.seed)));
  expect(Buffer.from(active.signer.sign(message))).toEqual(Buffer.from(ed25519.sign(message, key.seed)));
}

describe('signing key import at start', () => {
  let db: Database;
  beforeAll(async () => { db = await openTestDatabase(); });
  afterAll(async () => { await db.close(); });

  test('a key an older instance stored is read back unchanged and signs exactly as @noble/curves does', async () => {
    const key = generateSigningKey();
    const keyId = `ed25519:${key.version}`;
    // The row as every earlier version wrote it: public key by @noble/curves, seed sealed to its row.
    await db.knex('signing_keys').insert({
      server_name: 'old.example', key_id: keyId, public_key: encodeBase64(ed25519.getPublicKey(key.seed)), scope: ['m.requests'],
      encrypted_seed: masterKey.encrypt(key.seed, `signing_keys:old.example:${keyId}`), created_ts: 1000,
    });
    const store = new SigningKeyStore(db.knex, masterKey);
    const outcomes = await store.importKeys(copy([{ serverName: 'old.example', file: 'old.key', key }]));
    expect(outcomes).toEqual(new Map([['old.example', 'unchanged']]));
    await expectSignsAsNoble(store, 'old.example', key);
    expect(await db.knex('signing_keys').where({ server_name: 'old.example' }).select('created_ts')).toEqual([{ created_ts: 1000 }]);
  });

  test('new homeservers are inserted, known ones left alone, a changed file rotates; a restart reads them all back', async () => {
    const first = imports('bulk', 1500); // more than one insert batch
    const store = new SigningKeyStore(db.knex, masterKey);
    const outcomes = await store.importKeys(copy(first), 5000);
    expect([...outcomes.values()].every((o) => o === 'imported')).toBe(true);
    expect(outcomes.size).toBe(1500);
    await expectSignsAsNoble(store, 'bulk1499.example', first[1499]!.key);

    const rotated = generateSigningKey();
    const second = [...first.slice(0, 3), { ...first[3]!, key: rotated }, ...imports('more', 2)];
    const restarted = new SigningKeyStore(db.knex, masterKey);
    const again = await restarted.importKeys(copy(second), 6000);
    expect([...again]).toEqual([
      ['bulk0.example', 'unchanged'], ['bulk1.example', 'unchanged'], ['bulk2.example', 'unchanged'],
      ['bulk3.example', 'rotated'], ['more0.example', 'imported'], ['more1.example', 'imported'],
    ]);
    await expectSignsAsNoble(restarted, 'bulk0.example', first[0]!.key);
    await expectSignsAsNoble(restarted, 'bulk3.example', rotated);
    await expectSignsAsNoble(restarted, 'more1.example', second[5]!.key);
    const bulk3 = await db.knex('signing_keys').where({ server_name: 'bulk3.example' }).orderBy('created_ts').select('key_id', 'expired_ts');
    expect(bulk3).toEqual([{ key_id: `ed25519:${first[3]!.key.version}`, expired_ts: 6000 }, { key_id: `ed25519:${rotated.version}`, expired_ts: null }]);
  });

  test('signers are built on first use: a damaged stored key fails only its own homeserver, at its first signature', async () => {
    const items = imports('lazy', 3);
    await new SigningKeyStore(db.knex, masterKey).importKeys(copy(items));
    const damaged = `ed25519:${items[2]!.key.version}`;
    const [row] = await db.knex('signing_keys').where({ server_name: 'lazy2.example', key_id: damaged }).select('encrypted_seed');
    const sealed = Buffer.from(row.encrypted_seed);
    sealed[sealed.length - 1]! ^= 1;
    await db.knex('signing_keys').where({ server_name: 'lazy2.example', key_id: damaged }).update({ encrypted_seed: sealed });

    const store = new SigningKeyStore(db.knex, masterKey);
    expect(await store.importKeys(copy(items))).toEqual(new Map(items.map((item) => [item.serverName, 'unchanged'])));
    const broken = (await store.activeKey('lazy2.example'))!;
    expect(broken.publicKey).toBe(encodeBase64(ed25519.getPublicKey(items[2]!.key.seed)));
    expect(() => broken.signer.sign(message)).toThrow(/does not decrypt under this master key/);
    await expectSignsAsNoble(store, 'lazy1.example', items[1]!.key);
  });

  test('a key file giving the active key ID another seed is refused, also when the stored row does not decrypt', async () => {
    const [good, damaged] = imports('reid', 2);
    await new SigningKeyStore(db.knex, masterKey).importKeys(copy([good!, damaged!]));
    const dKeyId = `ed25519:${damaged!.key.version}`;
    const [row] = await db.knex('signing_keys').where({ server_name: damaged!.serverName }).select('encrypted_seed');
    const sealed = Buffer.from(row.encrypted_seed);
    sealed[sealed.length - 1]! ^= 1;
    await db.knex('signing_keys').where({ server_name: damaged!.serverName, key_id: dKeyId }).update({ encrypted_seed: sealed });
    for (const item of [good!, damaged!]) {
      const other = { ...item, key: { version: item.key.version, seed: generateSigningKey().seed } };
      await expect(new SigningKeyStore(db.knex, masterKey).importKeys([other])).rejects.toThrow(`key ID ed25519:${item.key.version} was already used by ${item.serverName}`);
    }
  });

  test('a tampered stored public key fails the first signature of a key imported unchanged', async () => {
    // The first unchanged key is unsealed at once (the master-key probe); the second is built on first use.
    const [probe, item, stranger] = imports('pub', 3);
    await new SigningKeyStore(db.knex, masterKey).importKeys(copy([probe!, item!]));
    const keyId = `ed25519:${item!.key.version}`;
    await db.knex('signing_keys').where({ server_name: item!.serverName }).update({ public_key: encodeBase64(ed25519.getPublicKey(stranger!.key.seed)) });
    const store = new SigningKeyStore(db.knex, masterKey);
    expect(await store.importKeys(copy([probe!, item!]))).toEqual(new Map([[probe!.serverName, 'unchanged'], [item!.serverName, 'unchanged']]));
    const active = (await store.activeKey(item!.serverName))!;
    expect(() => active.signer.sign(message)).toThrow(`signing key ${keyId} of ${item!.serverName}: stored public key does not match`);
  });

  test('new homeservers are inserted in server-name order, whatever the order of the imports', async () => {
    // Two instances inserting overlapping homeservers in one order wait on each other; in different orders they can deadlock.
    // Enough names for the sort to merge runs, in an order neither sorted nor reversed (37 and 300 are coprime).
    const names = Array.from({ length: 300 }, (_, i) => `order${(i * 37) % 300}.example`);
    const items = names.map((serverName) => ({ serverName, file: `${serverName}.key`, key: generateSigningKey() }));
    const inserted: string[] = [];
    const watch = (query: { sql: string; bindings?: unknown[] }) => {
      if (query.sql.startsWith('insert into "signing_keys"')) inserted.push(...(query.bindings ?? []).filter((b): b is string => typeof b === 'string' && names.includes(b)));
    };
    db.knex.on('query', watch);
    try {
      await new SigningKeyStore(db.knex, masterKey).importKeys(copy(items));
    } finally {
      db.knex.off('query', watch);
    }
    expect(inserted).toEqual([...names].sort());
  });

  test('going back to an earlier key rotates to it: an expired row holding the seed is not the active key', async () => {
    const [item] = imports('back', 1);
    const later = generateSigningKey();
    const store = new SigningKeyStore(db.knex, masterKey);
    expect(await store.importKeys(copy([item!]), 1000)).toEqual(new Map([[item!.serverName, 'imported']]));
    expect(await store.importKeys(copy([{ ...item!, key: later }]), 2000)).toEqual(new Map([[item!.serverName, 'rotated']]));
    const restarted = new SigningKeyStore(db.knex, masterKey);
    expect(await restarted.importKeys(copy([item!]), 3000)).toEqual(new Map([[item!.serverName, 'rotated']]));
    await expectSignsAsNoble(restarted, item!.serverName, item!.key);
    const rows = await db.knex('signing_keys').where({ server_name: item!.serverName }).orderBy('created_ts').select('key_id', 'expired_ts');
    expect(rows).toEqual([{ key_id: `ed25519:${item!.key.version}`, expired_ts: null }, { key_id: `ed25519:${later.version}`, expired_ts: 3000 }]);
  });

  test('the same seed under a new version rotates to the new key ID', async () => {
    const [item] = imports('renamed', 1);
    await new SigningKeyStore(db.knex, masterKey).importKeys(copy([item!]), 1000);
    const renamed = { ...item!, key: { version: `${item!.key.version}b`, seed: item!.key.seed } };
    const store = new SigningKeyStore(db.knex, masterKey);
    expect(await store.importKeys(copy([renamed]), 2000)).toEqual(new Map([[item!.serverName, 'rotated']]));
    await expectSignsAsNoble(store, item!.serverName, renamed.key);
  });

  test('a wrong master key stops the import before any homeserver is served', async () => {
    const items = imports('wrong', 2);
    await new SigningKeyStore(db.knex, masterKey).importKeys(copy(items));
    const other = new SigningKeyStore(db.knex, MasterKey.parse(randomBytes(32).toString('hex'), 'other'));
    await expect(other.importKeys(copy(items))).rejects.toThrow(/does not decrypt under this master key/);
  });
});

describe('two instances starting at once on one database', () => {
  test('end with exactly one key per homeserver, and both sign with it', async () => {
    const [dbA, dbB] = await openTwoDatabases();
    try {
      const items = imports('race', 200);
      const storeA = new SigningKeyStore(dbA.knex, masterKey);
      const storeB = new SigningKeyStore(dbB.knex, masterKey);
      const [a, b] = await Promise.all([storeA.importKeys(copy(items)), storeB.importKeys(copy(items))]);
      for (const { serverName } of items) expect([a.get(serverName), b.get(serverName)].sort()).toEqual(['imported', 'unchanged']);
      const counts = await dbA.knex('signing_keys').whereLike('server_name', 'race%').groupBy('server_name').select('server_name').count({ n: '*' });
      expect(counts).toHaveLength(200);
      expect(counts.every((c) => Number(c.n) === 1)).toBe(true);
      for (const i of [0, 100, 199]) {
        await expectSignsAsNoble(storeA, items[i]!.serverName, items[i]!.key);
        await expectSignsAsNoble(storeB, items[i]!.serverName, items[i]!.key);
      }
    } finally {
      await dbB.close();
      await dbA.close();
    }
  });
});
