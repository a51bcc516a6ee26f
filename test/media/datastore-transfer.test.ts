// Transfers between two folder datastores: filters by kind and homeserver, a blob shared with rows that
// stay keeps its source copy, and a damaged source copy is reported and moves nothing.
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CacheInvalidations } from '../../src/db/cache-invalidations.js';
import type { Database } from '../../src/db/database.js';
import { BlobReferences } from '../../src/media/blob-references.js';
import { DatastoreTransfer, type TransferFilter } from '../../src/media/datastore-transfer.js';
import { MediaStore } from '../../src/media/media-store.js';
import { Datastores } from '../../src/storage/datastores.js';
import { openTestDatabase } from '../helpers/database.js';

const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');

describe('DatastoreTransfer', () => {
  let db: Database;
  let datastores: Datastores;
  let media: MediaStore;
  let invalidations: CacheInvalidations;
  let blobs: BlobReferences;
  const root = mkdtempSync(join(tmpdir(), 'transfer-'));

  beforeAll(async () => {
    db = await openTestDatabase();
    datastores = await Datastores.open([
      { id: 'old', type: 'file', forKinds: ['local_media', 'remote_media', 'thumbnails'], opts: { path: join(root, 'old') } },
      { id: 'new', type: 'file', forKinds: ['local_media'], forHomeservers: ['none.example'], opts: { path: join(root, 'new') } },
    ]);
    blobs = new BlobReferences(db.knex, datastores);
    media = new MediaStore(db.knex, blobs);
    invalidations = new CacheInvalidations(db.knex, 10);
  });
  afterAll(async () => { await db.close(); });

  const store = async (serverName: string, mediaId: string, text: string, isRemote = false) => {
    const blob = await datastores.get('old').writeStream(Readable.from([Buffer.from(text)]), { maxBytes: 1000 });
    await media.insertMedia({ serverName, mediaId, isRemote, userId: null, contentType: 'text/plain', uploadName: null }, blob);
  };
  const thumbnail = async (serverName: string, mediaId: string, text: string) => {
    const blob = await datastores.get('old').writeStream(Readable.from([Buffer.from(text)]), { maxBytes: 1000 });
    await media.insertThumbnail({ serverName, mediaId, width: 32, height: 32, method: 'crop', animated: false }, 'image/png', blob);
  };
  const where = async () => Object.fromEntries([
    ...(await db.knex('media').select('media_id', 'datastore_id')).map((r: { media_id: string; datastore_id: string }) => [r.media_id, r.datastore_id]),
    ...(await db.knex('thumbnails').select('media_id', 'datastore_id')).map((r: { media_id: string; datastore_id: string }) => [`thumb:${r.media_id}`, r.datastore_id]),
  ]);
  const transfer = async (filter: Omit<TransferFilter, 'from' | 'to'>) => {
    const failures: string[] = [];
    const outcome = await new DatastoreTransfer({ knex: db.knex, datastores, blobs, invalidations }, { from: 'old', to: 'new', ...filter })
      .run(() => {}, (sha, error) => failures.push(`${sha}: ${(error as Error).message}`));
    return { ...outcome, failures };
  };

  test('kind, then homeserver; a blob other rows still use keeps its source copy', async () => {
    await store('a.example', 'a1', 'shared bytes');
    await store('b.example', 'b1', 'shared bytes');
    await store('a.example', 'a2', 'only a');
    await store('remote.example', 'r1', 'remote bytes', true);
    await thumbnail('a.example', 'a1', 'a thumbnail');
    expect(await transfer({ kind: 'thumbnails' })).toMatchObject({ total: 1, done: 1, failed: 0 });
    expect(await where()).toEqual({ a1: 'old', b1: 'old', a2: 'old', r1: 'old', 'thumb:a1': 'new' });
    expect(await transfer({ homeserver: 'a.example' })).toMatchObject({ total: 2, done: 2, failed: 0 });
    expect(await where()).toEqual({ a1: 'new', b1: 'old', a2: 'new', r1: 'old', 'thumb:a1': 'new' });
    expect(await datastores.get('old').has(sha256('shared bytes'))).toBe(true);
    expect(await datastores.get('new').has(sha256('shared bytes'))).toBe(true);
    expect(await datastores.get('old').has(sha256('only a'))).toBe(false);
    expect(await datastores.get('old').has(sha256('a thumbnail'))).toBe(false);
    expect(await transfer({})).toMatchObject({ total: 2, done: 2, failed: 0 });
    expect(await datastores.get('old').has(sha256('shared bytes'))).toBe(false);
    expect(await db.knex('pending_blob_deletions').select()).toEqual([]);
  });

  test('a source copy that no longer matches its digest is reported; its row stays and nothing is copied', async () => {
    await store('a.example', 'damaged', 'original bytes');
    const digest = sha256('original bytes');
    writeFileSync(join(root, 'old', digest.slice(0, 2), digest.slice(2, 4), digest), 'bit rot');
    const outcome = await transfer({});
    expect(outcome).toMatchObject({ total: 1, done: 0, failed: 1 });
    expect(outcome.failures).toEqual([`${digest}: the copy read from old hashes to ${sha256('bit rot')}: the stored blob is damaged; its rows stay where they are`]);
    expect((await where()).damaged).toBe('old');
    expect(await datastores.get('new').has(digest)).toBe(false);
    expect(await datastores.get('new').has(sha256('bit rot'))).toBe(false);
  });
});
