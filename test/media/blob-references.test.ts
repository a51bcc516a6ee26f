// Attaching a blob to its row: the slow publish (an fsync, an object store's copy) holds no database
// connection and no lock, and bytes a deleter took between the publish and the row come back from the staged copy.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Database } from '../../src/db/database.js';
import { blobLockKey, BlobReferences } from '../../src/media/blob-references.js';
import { MediaStore, type NewMedia } from '../../src/media/media-store.js';
import type { StagedBlob } from '../../src/storage/datastore.js';
import { Datastores } from '../../src/storage/datastores.js';
import { FilesystemDatastore } from '../../src/storage/filesystem.js';
import { openTestDatabase } from '../helpers/database.js';

let db: Database;
let storage: FilesystemDatastore;
let blobs: BlobReferences;
let store: MediaStore;
let next = 0;

beforeAll(async () => {
  db = await openTestDatabase();
  storage = await FilesystemDatastore.open(mkdtempSync(join(tmpdir(), 'blob-references-')));
  blobs = new BlobReferences(db.knex, new Datastores([storage], new Map([['local_media', [{ store: storage }]]])));
  store = new MediaStore(db.knex, blobs);
});
afterAll(async () => {
  await db.close();
  rmSync(storage.root, { recursive: true, force: true });
});

const media = (): NewMedia => ({
  serverName: 'a.example', mediaId: `m${++next}`, isRemote: false, userId: '@alice:a.example', contentType: 'text/plain', uploadName: null,
});
const staging = () => readdirSync(join(storage.root, '.tmp'));

/** The staged blob, whose first publish runs `meanwhile` once the bytes are readable, before attach goes on. */
async function stageWith(text: string, meanwhile: () => Promise<void>): Promise<StagedBlob & { publishes: number }> {
  const inner = await storage.writeStream(Readable.from([Buffer.from(text)]), { maxBytes: 1000 });
  const blob = {
    ...inner,
    publishes: 0,
    publish: async () => {
      await inner.publish();
      if (blob.publishes++ === 0) await meanwhile();
    },
  };
  return blob;
}

test('while the blob is published, its lock is free and the database answers other queries', async () => {
  let lockWasFree: boolean | undefined;
  const blob = await stageWith('published without a lock', async () => {
    // The whole pool may be one connection (the embedded database): this would wait forever if attach held it.
    const answer = db.knex.transaction(async (trx) => {
      const { rows } = await trx.raw<{ rows: Array<{ free: boolean }> }>('SELECT pg_try_advisory_xact_lock(?, hashtext(?)) AS free', blobLockKey('default', blob.sha256));
      return rows[0]!.free;
    });
    lockWasFree = await Promise.race([answer, new Promise<undefined>((resolve) => setTimeout(resolve, 5000))]);
  });
  expect(await store.insertMedia(media(), blob)).toBe(true);
  expect(lockWasFree).toBe(true);
  expect(await storage.has(blob.sha256)).toBe(true);
  expect(staging()).toEqual([]);
});

test('bytes deleted between the publish and the row are published again under the lock: the row never points at nothing', async () => {
  const blob = await stageWith('deleted by a purge of the same bytes', async () => {
    // A deleter that finds no row for these bytes (a purge, the sweep) takes them.
    expect(await blobs.deleteIfUnreferenced('default', blob.sha256)).toBe(true);
    expect(await storage.has(blob.sha256)).toBe(false);
  });
  const added = media();
  expect(await store.insertMedia(added, blob)).toBe(true);
  expect(blob.publishes).toBe(2);
  const row = await store.get(added.serverName, added.mediaId);
  expect(row!.sha256).toBe(blob.sha256);
  const back = await storage.read(blob.sha256);
  const chunks: Buffer[] = [];
  for await (const chunk of back) chunks.push(chunk as Buffer);
  expect(Buffer.concat(chunks).toString()).toBe('deleted by a purge of the same bytes');
  expect(staging()).toEqual([]);
});

test('a blob whose row is refused is deleted once no row references it, and leaves no staged copy', async () => {
  const taken = media();
  expect(await store.insertMedia(taken, await stageWith('first', async () => undefined))).toBe(true);
  const loser = await stageWith('second, for a taken ID', async () => undefined);
  expect(await store.insertMedia(taken, loser)).toBe(false);
  expect(await storage.has(loser.sha256)).toBe(false);
  expect(staging()).toEqual([]);
});
