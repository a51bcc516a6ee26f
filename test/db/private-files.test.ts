// Owner-only files, as PostgreSQL's initdb makes them, even under a permissive umask: the embedded
// database's folder 0700 and every file 0600 (those it creates while open too, by close), the generated
// master key and signing key files 0600.
import { lstatSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbedded } from '../../src/db/database.js';
import { generateSigningKey, writeKeyFile } from '../../src/keys/key-files.js';
import { MasterKey } from '../../src/keys/master-key.js';

/** Every entry under `root` (itself included) with its permission bits. */
function modes(root: string): Map<string, number> {
  const found = new Map([[root, lstatSync(root).mode & 0o777]]);
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    found.set(path, lstatSync(path).mode & 0o777);
  }
  return found;
}

function notOwnerOnly(root: string): string[] {
  return [...modes(root)].filter(([path, mode]) => mode !== (lstatSync(path).isDirectory() ? 0o700 : 0o600)).map(([path, mode]) => `${path} ${mode.toString(8)}`);
}

describe('owner-only files', () => {
  let umask: number;
  beforeAll(() => { umask = process.umask(0); });
  afterAll(() => { process.umask(umask); });

  test('the embedded database: folder 0700, every file 0600, after creation and after use', async () => {
    const directory = join(mkdtempSync(join(tmpdir(), 'pglite-modes-')), 'pglite');
    const db = await openEmbedded(directory);
    try {
      expect(notOwnerOnly(directory)).toEqual([]);
      // Files PGlite makes while open (a new table's) are out of others' reach behind the 0700 folder.
      await db.knex.raw('CREATE TABLE made_later (a int)');
      await db.knex.raw('INSERT INTO made_later SELECT generate_series(1, 1000)');
      expect(lstatSync(directory).mode & 0o777).toBe(0o700);
    } finally {
      await db.close();
    }
    const all = modes(directory);
    expect(all.size).toBeGreaterThan(100);
    expect(notOwnerOnly(directory)).toEqual([]);
    // Reopened, as the service is after a restart: still owner-only, and the data is there.
    const again = await openEmbedded(directory);
    try {
      expect((await again.knex('made_later').count<{ count: number }[]>({ count: '*' }))[0]!.count).toBe(1000);
    } finally {
      await again.close();
    }
    expect(notOwnerOnly(directory)).toEqual([]);
  }, 180_000);

  test('the generated master key and a written signing key file are 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'key-modes-'));
    const { created } = MasterKey.loadOrCreateFile(join(dir, 'data', 'master.key'));
    expect(created).toBe(true);
    expect(lstatSync(join(dir, 'data', 'master.key')).mode & 0o777).toBe(0o600);
    await writeKeyFile(join(dir, 'signing.key'), [generateSigningKey()], 'synapse');
    expect(lstatSync(join(dir, 'signing.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'signing.key'), 'utf8')).toMatch(/^ed25519 /);
  });
});
