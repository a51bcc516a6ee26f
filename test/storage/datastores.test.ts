// The datastore registry: ids, the writer of each kind, and rows naming a datastore that is not configured.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Datastores } from '../../src/storage/datastores.js';
import { FilesystemDatastore } from '../../src/storage/filesystem.js';

describe('Datastores', () => {
  const root = mkdtempSync(join(tmpdir(), 'datastores-'));
  let stores: Datastores;
  beforeAll(async () => {
    stores = await Datastores.open([
      { id: 'fast', type: 'file', forKinds: ['thumbnails'], opts: { path: join(root, 'fast') } },
      { id: 'bulk', type: 'file', forKinds: ['local_media', 'remote_media', 'thumbnails'], opts: { path: join(root, 'bulk') } },
    ]);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  test('each kind is written to the first datastore that takes it', () => {
    expect(stores.forKind('thumbnails').id).toBe('fast');
    expect(stores.forKind('local_media').id).toBe('bulk');
    expect(stores.forKind('remote_media').id).toBe('bulk');
    expect(stores.all().map((s) => s.id)).toEqual(['fast', 'bulk']);
  });

  test('staged blobs name their datastore, and each datastore keeps its own bytes', async () => {
    const bytes = Buffer.from('the same bytes in two places');
    const fast = await stores.get('fast').writeStream(Readable.from([bytes]), { maxBytes: 100 });
    const bulk = await stores.get('bulk').writeStream(Readable.from([bytes]), { maxBytes: 100 });
    expect([fast.datastoreId, bulk.datastoreId]).toEqual(['fast', 'bulk']);
    await fast.commit();
    expect(await stores.get('fast').has(fast.sha256)).toBe(true);
    expect(await stores.get('bulk').has(bulk.sha256)).toBe(false);
    expect((stores.get('fast') as FilesystemDatastore).root).toBe(join(root, 'fast'));
  });

  test('a row naming an unconfigured datastore is a clear error', () => {
    expect(() => stores.get('gone')).toThrow('a stored row names datastore "gone", which is not configured');
  });
});

describe('Datastores per homeserver', () => {
  const root = mkdtempSync(join(tmpdir(), 'datastores-hs-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  test("a datastore naming a homeserver takes its new media, wherever it is listed; others' go to one open to all", async () => {
    const stores = await Datastores.open([
      { id: 'shared', type: 'file', forKinds: ['local_media', 'remote_media', 'thumbnails'], opts: { path: join(root, 'shared') } },
      { id: 'big-customer', type: 'file', forKinds: ['local_media'], forHomeservers: ['big.example'], opts: { path: join(root, 'big') } },
    ]);
    expect(stores.forKind('local_media', 'big.example').id).toBe('big-customer');
    expect(stores.forKind('thumbnails', 'big.example').id).toBe('shared');
    expect(stores.forKind('local_media', 'small.example').id).toBe('shared');
    expect(stores.forKind('remote_media').id).toBe('shared');
  });
});
