import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Database } from '../../src/db/database.js';
import { MasterKey } from '../../src/keys/master-key.js';
import { SigningKeyStore } from '../../src/keys/signing-key-store.js';
import { decodeBase64 } from '../../src/matrix/base64.js';
import { verifySignature } from '../../src/matrix/ed25519.js';
import { openTestDatabase } from '../helpers/database.js';

const vectors = JSON.parse(readFileSync('test/fixtures/key-files.json', 'utf8')) as Record<string, { file: string; keyId: string; publicKey: string }>;
const dir = mkdtempSync(join(tmpdir(), 'keystore-'));

function keyFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('signing key store', () => {
  let db: Database;
  const masterKey = MasterKey.parse(randomBytes(32).toString('hex'), 'test');
  beforeAll(async () => { db = await openTestDatabase(); });
  afterAll(async () => { await db.close(); });

  test.each(['synapse', 'dendrite', 'mmr'])('imports a %s key file and signs with it', async (format) => {
    const store = new SigningKeyStore(db.knex, masterKey);
    const server = `${format}.example`;
    expect(await store.importKeyFile(server, keyFile(`${format}.key`, vectors[format]!.file))).toBe('imported');
    const key = (await store.activeKey(server))!;
    expect(key).toMatchObject({ keyId: vectors[format]!.keyId, publicKey: vectors[format]!.publicKey, scope: ['m.requests'] });
    const message = Buffer.from('hello');
    expect(verifySignature(decodeBase64(vectors[format]!.publicKey), message, key.signer.sign(message))).toBe(true);
  });

  test('the seed is stored only encrypted', async () => {
    const rows = await db.knex('signing_keys').where({ server_name: 'synapse.example' });
    const seed = decodeBase64(vectors.synapse!.file.split(' ')[2]!);
    expect(rows).toHaveLength(1);
    expect(Buffer.from(rows[0].encrypted_seed).includes(seed)).toBe(false);
    expect(Object.values(rows[0]).some((v) => typeof v === 'string' && v.includes(vectors.synapse!.file.split(' ')[2]!))).toBe(false);
  });

  test('the same file again changes nothing; a new key rotates and keeps the old one with its expiry', async () => {
    const store = new SigningKeyStore(db.knex, masterKey);
    const file = keyFile('rot.key', vectors.synapse!.file);
    expect(await store.importKeyFile('rot.example', file, 1000)).toBe('imported');
    expect(await store.importKeyFile('rot.example', file, 2000)).toBe('unchanged');
    writeFileSync(file, vectors.mmr!.file);
    expect(await store.importKeyFile('rot.example', file, 3000)).toBe('rotated');
    expect((await store.activeKey('rot.example'))!.keyId).toBe(vectors.mmr!.keyId);
    const listed = (await store.list()).filter((k) => k.serverName === 'rot.example');
    expect(listed.map((k) => [k.keyId, k.expiredTs])).toEqual([[vectors.synapse!.keyId, 3000], [vectors.mmr!.keyId, null]]);
    expect(JSON.stringify(listed)).not.toMatch(/seed/i);
  });

  test('a key ID reused for a different key is refused and changes nothing', async () => {
    const store = new SigningKeyStore(db.knex, masterKey);
    const [, version] = vectors.synapse!.file.split(' ');
    const file = keyFile('reuse.key', `ed25519 ${version} ${randomBytes(32).toString('base64').replace(/=+$/, '')}\n`);
    await expect(store.importKeyFile('rot.example', file)).rejects.toThrow(`${file}: key ID ${vectors.synapse!.keyId} was already used by rot.example for a different key`);
    expect((await store.activeKey('rot.example'))!.keyId).toBe(vectors.mmr!.keyId);
  });

  test('going back to an earlier key makes its row active again, without a second row', async () => {
    const store = new SigningKeyStore(db.knex, masterKey);
    const file = keyFile('back.key', vectors.synapse!.file);
    expect(await store.importKeyFile('back.example', file, 1000)).toBe('imported');
    writeFileSync(file, vectors.mmr!.file);
    expect(await store.importKeyFile('back.example', file, 2000)).toBe('rotated');
    writeFileSync(file, vectors.synapse!.file);
    expect(await store.importKeyFile('back.example', file, 3000)).toBe('rotated');
    const active = (await store.activeKey('back.example'))!;
    expect([active.keyId, active.publicKey]).toEqual([vectors.synapse!.keyId, vectors.synapse!.publicKey]);
    expect(Buffer.from(active.signer.publicKey)).toEqual(decodeBase64(vectors.synapse!.publicKey));
    const listed = (await store.list()).filter((k) => k.serverName === 'back.example');
    expect(listed.map((k) => [k.keyId, k.createdTs, k.expiredTs])).toEqual([[vectors.synapse!.keyId, 1000, null], [vectors.mmr!.keyId, 2000, 3000]]);
  });

  test("a rotation expires only its own homeserver's key", async () => {
    const store = new SigningKeyStore(db.knex, masterKey);
    await store.importKeyFile('stay.example', keyFile('stay.key', vectors.dendrite!.file), 100);
    const file = keyFile('move.key', vectors.synapse!.file);
    await store.importKeyFile('move.example', file, 100);
    writeFileSync(file, vectors.mmr!.file);
    expect(await store.importKeyFile('move.example', file, 200)).toBe('rotated');
    const stay = (await store.list()).filter((k) => k.serverName === 'stay.example');
    expect(stay.map((k) => [k.keyId, k.expiredTs])).toEqual([[vectors.dendrite!.keyId, null]]);
  });

  test('the same seed under a new version rotates to the new key ID', async () => {
    const store = new SigningKeyStore(db.knex, masterKey);
    const [, version, seed] = vectors.synapse!.file.split(' ');
    const file = keyFile('renamed.key', vectors.synapse!.file);
    await store.importKeyFile('renamed.example', file, 100);
    writeFileSync(file, `ed25519 ${version}2 ${seed}`);
    expect(await store.importKeyFile('renamed.example', file, 200)).toBe('rotated');
    expect((await store.activeKey('renamed.example'))!.keyId).toBe(`${vectors.synapse!.keyId}2`);
  });

  test('list orders by homeserver, then by creation', async () => {
    const store = new SigningKeyStore(db.knex, masterKey);
    await store.importKeyFile('zz-list.example', keyFile('zz.key', vectors.synapse!.file), 500);
    await store.importKeyFile('aa-list.example', keyFile('aa.key', vectors.dendrite!.file), 900);
    const names = (await store.list()).map((k) => k.serverName).filter((name) => name.endsWith('-list.example'));
    expect(names).toEqual(['aa-list.example', 'zz-list.example']);
  });

  test('another master key cannot unseal the stored key', async () => {
    const other = new SigningKeyStore(db.knex, MasterKey.parse(randomBytes(32).toString('hex'), 'x'));
    await expect(other.activeKey('synapse.example')).rejects.toThrow(/does not decrypt under this master key/);
  });

  test('a stored public key that does not belong to the sealed seed is refused when the key is loaded', async () => {
    const store = new SigningKeyStore(db.knex, masterKey);
    expect(await store.importKeyFile('tampered.example', keyFile('tampered.key', vectors.dendrite!.file))).toBe('imported');
    // Another key's public half: what a peer would then be told to verify our signatures with.
    await db.knex('signing_keys').where({ server_name: 'tampered.example' }).update({ public_key: vectors.synapse!.publicKey });
    const fresh = new SigningKeyStore(db.knex, masterKey);
    await expect(fresh.activeKey('tampered.example')).rejects.toThrow(`signing key ${vectors.dendrite!.keyId} of tampered.example: stored public key does not match`);
  });

  test('instances importing at once leave exactly one active key', async () => {
    const file = keyFile('race.key', vectors.dendrite!.file);
    const outcomes = await Promise.all([1, 2, 3].map(() => new SigningKeyStore(db.knex, masterKey).importKeyFile('race.example', file)));
    expect(outcomes.sort()).toEqual(['imported', 'unchanged', 'unchanged']);
    expect(await db.knex('signing_keys').where({ server_name: 'race.example' }).whereNull('expired_ts').count({ n: '*' })).toEqual([{ n: 1 }]);
  });
});
