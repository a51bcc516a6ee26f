// Start-up's key files: read before the database opens (a bad file fails at once, naming its homeserver),
// then imported in one pass with one summary log line, the seeds wiped from memory afterwards.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Database } from '../../src/db/database.js';
import { importKeyFiles, readKeyFiles } from '../../src/keys/key-file-imports.js';
import { formatKeyFile, generateSigningKey, parseKeyFile } from '../../src/keys/key-files.js';
import { MasterKey } from '../../src/keys/master-key.js';
import { SigningKeyStore } from '../../src/keys/signing-key-store.js';
import { createLogger } from '../../src/log.js';
import { openTestDatabase } from '../helpers/database.js';
import { homeserversWithKeys, keyFileVectors, writeTempKeyFile } from '../helpers/keys.js';

/** A logger whose lines the test reads back. */
function capturedLog(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { log: createLogger('info', { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) }), lines };
}

describe('reading the key files', () => {
  test("the first key of each homeserver's file, by its bytes; homeservers without a file are left out", () => {
    const { dendrite, synapse } = keyFileVectors();
    const first = parseKeyFile(dendrite.file, 'd.key').keys[0]!;
    const later = generateSigningKey();
    const aFile = writeTempKeyFile(formatKeyFile([first, later], 'dendrite'));
    const bFile = writeTempKeyFile(synapse.file);
    const read = readKeyFiles(homeserversWithKeys({ name: 'a.example', signingKeyPath: aFile }, { name: 'none.example' }, { name: 'b.example', signingKeyPath: bFile }));
    expect(read.map(({ serverName, file, key }) => [serverName, file, key.version, Buffer.from(key.seed).toString('base64')])).toEqual([
      ['a.example', aFile, first.version, Buffer.from(first.seed).toString('base64')],
      ['b.example', bFile, 'a_RVfN', `${synapse.file.split(' ')[2]!}=`],
    ]);
  });

  test('a bad file fails at once, naming its homeserver and the file, never the key', () => {
    const seed = keyFileVectors().synapse.file.split(' ')[2]!;
    const file = writeTempKeyFile(`ed25519 a-b ${seed}`);
    expect(() => readKeyFiles(homeserversWithKeys({ name: 'bad.example', signingKeyPath: file }))).toThrow(
      new Error(`homeserver bad.example: signing key ${file}: line 1: key version must be made of [a-zA-Z0-9_]`),
    );
  });
});

describe('importing them', () => {
  let db: Database;
  // Master keys are made inside each test: one parsed at collection would fail the whole file under a mutation.
  const newMasterKey = () => MasterKey.parse(randomBytes(32).toString('hex'), 'test');
  beforeAll(async () => { db = await openTestDatabase(); });
  afterAll(async () => { await db.close(); });

  test('logs each imported or rotated key, one summary with the counts, a warning for homeservers without a file; wipes the seeds', async () => {
    const { mmr, synapse } = keyFileVectors();
    const file = writeTempKeyFile(synapse.file);
    const rotating = writeTempKeyFile(synapse.file);
    const config = homeserversWithKeys({ name: 'i1.example', signingKeyPath: file }, { name: 'i2.example', signingKeyPath: rotating }, { name: 'plain.example' });
    const masterKey = newMasterKey();
    const store = new SigningKeyStore(db.knex, masterKey);
    const first = capturedLog();
    await importKeyFiles(store, config, readKeyFiles(config), first.log);
    expect(first.lines.map(({ level, msg, homeservers, homeserver, keyId, outcome }) => ({ level, msg, homeservers, homeserver, keyId, outcome }))).toEqual([
      { level: 40, msg: 'no signingKeyPath: remote media can only be fetched over the legacy unauthenticated endpoints', homeservers: ['plain.example'] },
      { level: 30, msg: 'signing key ready', homeserver: 'i1.example', keyId: synapse.keyId, outcome: 'imported' },
      { level: 30, msg: 'signing key ready', homeserver: 'i2.example', keyId: synapse.keyId, outcome: 'imported' },
      { level: 30, msg: 'signing keys ready' },
    ]);
    expect(first.lines[3]).toMatchObject({ unchanged: 0, imported: 2, rotated: 0 });

    writeFileSync(rotating, mmr.file);
    const imports = readKeyFiles(config);
    const again = capturedLog();
    await importKeyFiles(new SigningKeyStore(db.knex, masterKey), config, imports, again.log);
    expect(again.lines.slice(1).map(({ msg, homeserver, keyId, outcome }) => ({ msg, homeserver, keyId, outcome }))).toEqual([
      { msg: 'signing key ready', homeserver: 'i2.example', keyId: mmr.keyId, outcome: 'rotated' },
      { msg: 'signing keys ready' },
    ]);
    expect(again.lines[2]).toMatchObject({ unchanged: 1, imported: 0, rotated: 1 });
    for (const item of imports) expect(Buffer.from(item.key.seed)).toEqual(Buffer.alloc(32));
  });

  test('no warning when every homeserver has a key file', async () => {
    const config = homeserversWithKeys({ name: 'all.example', signingKeyPath: writeTempKeyFile(keyFileVectors().dendrite.file) });
    const { log, lines } = capturedLog();
    await importKeyFiles(new SigningKeyStore(db.knex, newMasterKey()), config, readKeyFiles(config), log);
    expect(lines.map((line) => line.msg)).toEqual(['signing key ready', 'signing keys ready']);
  });

  test("a store failure names the signing keys and the store's reason", async () => {
    const config = homeserversWithKeys({ name: 'wrong.example', signingKeyPath: writeTempKeyFile(keyFileVectors().synapse.file) });
    await importKeyFiles(new SigningKeyStore(db.knex, newMasterKey()), config, readKeyFiles(config), capturedLog().log);
    const other = new SigningKeyStore(db.knex, newMasterKey());
    await expect(importKeyFiles(other, config, readKeyFiles(config), capturedLog().log)).rejects.toThrow(
      /^signing keys: encrypted key for signing_keys:wrong\.example:ed25519:a_RVfN: does not decrypt under this master key/,
    );
  });
});
