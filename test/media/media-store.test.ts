// MediaStore on the test database (PGlite, or real PostgreSQL with MEDIA_REPO_TEST_DATABASE_URL) and a real datastore.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { EVERY_KEY } from '../../src/db/cache-invalidations.js';
import type { Database } from '../../src/db/database.js';
import { BlobReferences } from '../../src/media/blob-references.js';
import { MediaStore, THUMBNAIL_SIZES_CACHED, type NewMedia } from '../../src/media/media-store.js';
import { Datastores } from '../../src/storage/datastores.js';
import { FilesystemDatastore } from '../../src/storage/filesystem.js';
import { openTestDatabase } from '../helpers/database.js';

describe('MediaStore', () => {
  let db: Database;
  let storage: FilesystemDatastore;
  let other: FilesystemDatastore;
  let store: MediaStore;
  let blobs: BlobReferences;
  beforeAll(async () => {
    db = await openTestDatabase();
    storage = await FilesystemDatastore.open(mkdtempSync(join(tmpdir(), 'media-store-')));
    other = await FilesystemDatastore.open(mkdtempSync(join(tmpdir(), 'media-store-other-')), 'other');
    blobs = new BlobReferences(db.knex, new Datastores([storage, other], new Map([['local_media', [{ store: storage }]]])));
    store = new MediaStore(db.knex, blobs);
  });
  afterAll(async () => {
    await db.close();
    rmSync(storage.root, { recursive: true, force: true });
    rmSync(other.root, { recursive: true, force: true });
  });

  const stage = (text: string) => storage.writeStream(Readable.from([Buffer.from(text)]), { maxBytes: 1000 });
  const media = (mediaId: string): NewMedia => ({
    serverName: 'a.example', mediaId, isRemote: false, userId: '@alice:a.example', contentType: 'text/plain', uploadName: 'a.txt',
  });

  test('insertMedia commits the blob and records it', async () => {
    const blob = await stage('first upload');
    expect(await store.insertMedia(media('m1'), blob, 1000)).toBe(true);
    expect(await storage.has(blob.sha256)).toBe(true);
    expect(await store.get('a.example', 'm1')).toEqual({
      serverName: 'a.example', mediaId: 'm1', isRemote: false, userId: '@alice:a.example', contentType: 'text/plain',
      uploadName: 'a.txt', datastoreId: 'default', sha256: blob.sha256, size: 12, createdTs: 1000, storedTs: 1000, expiresTs: null,
      quarantined: false,
    });
    expect(await store.get('a.example', 'nope')).toBeUndefined();
  });

  test('cached records are trusted for the TTL only; invalidate forgets them at once', async () => {
    const short = new MediaStore(db.knex, blobs, 150);
    expect((await short.get('a.example', 'm1'))!.quarantined).toBe(false);
    expect(await short.isQuarantined('a.example', 'm1')).toBe(false);
    await db.knex('quarantined_media').insert({ server_name: 'a.example', media_id: 'm1', quarantined_ts: 1, quarantined_by: 'test' });
    // Another instance's quarantine: unseen until the cached record expires.
    expect((await short.get('a.example', 'm1'))!.quarantined).toBe(false);
    await new Promise((r) => setTimeout(r, 200));
    expect((await short.get('a.example', 'm1'))!.quarantined).toBe(true);
    expect(await short.isQuarantined('a.example', 'm1')).toBe(true);
    await db.knex('quarantined_media').delete();
    short.forget('a.example/m1');
    expect((await short.get('a.example', 'm1'))!.quarantined).toBe(false);
    expect(await short.isQuarantined('a.example', 'm1')).toBe(false);
  });

  test('forgetting EVERY_KEY drops every cached record (a bulk change elsewhere)', async () => {
    const long = new MediaStore(db.knex, blobs, 60_000);
    expect(await long.isQuarantined('a.example', 'm1')).toBe(false);
    await db.knex('quarantined_media').insert({ server_name: 'a.example', media_id: 'm1', quarantined_ts: 1, quarantined_by: 'test' });
    long.forget('a.example/other');
    expect(await long.isQuarantined('a.example', 'm1')).toBe(false);
    long.forget(EVERY_KEY);
    expect(await long.isQuarantined('a.example', 'm1')).toBe(true);
    expect((await long.get('a.example', 'm1'))!.quarantined).toBe(true);
    await db.knex('quarantined_media').delete();
  });

  test('a taken ID returns false; an unreferenced blob is deleted, a referenced one kept', async () => {
    const orphan = await stage('never referenced');
    expect(await store.insertMedia(media('m1'), orphan)).toBe(false);
    expect(await storage.has(orphan.sha256)).toBe(false);

    const shared = await stage('first upload');
    expect(await store.insertMedia(media('m1'), shared)).toBe(false);
    expect(await storage.has(shared.sha256)).toBe(true);
  });

  test('a failing insert discards the blob', async () => {
    const blob = await stage('bad row');
    await expect(store.insertMedia({ ...media('m-bad'), serverName: null as unknown as string }, blob)).rejects.toThrow();
    expect(await storage.has(blob.sha256)).toBe(false);
    expect(await store.get('a.example', 'm-bad')).toBeUndefined();
  });

  test('createPending enforces the per-user limit atomically and reports when a slot frees', async () => {
    const now = 10_000;
    const outcomes = await Promise.all(Array.from({ length: 7 }, (_, i) =>
      store.createPending('a.example', `p${i}`, '@bob:a.example', { expiresTs: now + 1000 + i, maxPending: 3 }, now)));
    expect(outcomes.filter((o) => o.created)).toHaveLength(3);
    const refused = outcomes.filter((o) => !o.created);
    expect(refused).toHaveLength(4);
    const firstExpiry = Math.min(...(await db.knex('media').where({ user_id: '@bob:a.example' }).pluck('expires_ts')).map(Number));
    for (const o of refused) expect(o).toEqual({ created: false, retryAfterMs: firstExpiry - now });
    // Someone else is unaffected; once the pending ones expire, they are dropped and bob may create again.
    expect((await store.createPending('a.example', 'q0', '@carol:a.example', { expiresTs: now + 1000, maxPending: 3 }, now)).created).toBe(true);
    expect((await store.createPending('a.example', 'p9', '@bob:a.example', { expiresTs: now + 99_000, maxPending: 3 }, now + 5000)).created).toBe(true);
    expect(await db.knex('media').where({ user_id: '@bob:a.example' }).pluck('media_id')).toEqual(['p9']);
  });

  test('completePending: of two racing uploads exactly one lands, the loser\'s bytes are removed', async () => {
    await store.createPending('a.example', 'race', '@dave:a.example', { expiresTs: Date.now() + 60_000, maxPending: 3 });
    const [one, two] = await Promise.all([stage('racer one'), stage('racer two')]);
    const results = await Promise.all([
      store.completePending('a.example', 'race', { contentType: 'text/plain', uploadName: null }, one!),
      store.completePending('a.example', 'race', { contentType: 'text/plain', uploadName: null }, two!),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = results[0] ? one! : two!;
    const loser = results[0] ? two! : one!;
    expect((await store.get('a.example', 'race'))?.sha256).toBe(winner.sha256);
    expect(await storage.has(winner.sha256)).toBe(true);
    expect(await storage.has(loser.sha256)).toBe(false);
  });

  test('a pending upload is looked up afresh until its bytes arrive, then served without the database', async () => {
    await store.createPending('a.example', 'later', '@erin:a.example', { expiresTs: Date.now() + 60_000, maxPending: 3 });
    expect((await store.get('a.example', 'later'))?.sha256).toBeNull();
    const blob = await stage('arrived later');
    expect(await store.completePending('a.example', 'later', { contentType: 'text/plain', uploadName: null }, blob)).toBe(true);
    expect((await store.get('a.example', 'later'))?.sha256).toBe(blob.sha256);
    // Another instance reads it once, then serves it with no query.
    const reader = new MediaStore(db.knex, blobs);
    expect((await reader.get('a.example', 'later'))?.sha256).toBe(blob.sha256);
    const queries: string[] = [];
    const listen = (q: { sql: string }) => queries.push(q.sql);
    db.knex.on('query', listen);
    try {
      expect((await reader.get('a.example', 'later'))?.sha256).toBe(blob.sha256);
    } finally {
      db.knex.removeListener('query', listen);
    }
    expect(queries).toEqual([]);
  });

  test('the sweep deletes committed bytes that no row references, and only those', async () => {
    const kept = await stage('kept by a row');
    expect(await store.insertMedia(media('swept-kept'), kept)).toBe(true);
    // What a crash between committing the bytes and writing their row leaves behind.
    const orphan = await stage('left by a crash');
    await orphan.commit();
    const { checked, deleted } = await blobs.sweepUnreferenced();
    expect(deleted).toBe(1);
    expect(checked).toBeGreaterThanOrEqual(2);
    expect(await storage.has(orphan.sha256)).toBe(false);
    expect(await storage.has(kept.sha256)).toBe(true);
    expect((await blobs.sweepUnreferenced()).deleted).toBe(0);
  });

  test('a blob that only a remote thumbnail references survives a discard of the same bytes', async () => {
    const blob = await stage('remote thumbnail bytes');
    await blob.commit();
    await db.knex('remote_thumbnails').insert({
      server_name: 'remote.example', media_id: 'r1', width: 32, height: 32, method: 'crop', animated: false,
      content_type: 'image/png', datastore_id: 'default', sha256: blob.sha256, size: blob.size, created_ts: 1,
    });
    expect(await store.insertMedia(media('m1'), await stage('remote thumbnail bytes'))).toBe(false);
    expect(await storage.has(blob.sha256)).toBe(true);
  });

  test('insertThumbnail keeps the first row for a key and hands it to later writers', async () => {
    const key = { serverName: 'a.example', mediaId: 'm1', width: 32, height: 32, method: 'crop' as const, animated: false };
    const first = await stage('thumb one');
    const second = await stage('thumb two');
    const stored = await store.insertThumbnail(key, 'image/png', first, 5);
    expect(stored).toEqual({ ...key, contentType: 'image/png', datastoreId: 'default', sha256: first.sha256, size: 9, createdTs: 5 });
    expect(await store.insertThumbnail(key, 'image/png', second, 6)).toEqual(stored);
    expect(await storage.has(second.sha256)).toBe(false);
    expect(await store.getThumbnail(key)).toEqual(stored);
    expect(await store.getThumbnail({ ...key, animated: true })).toBeUndefined();
  });

  test('one media keeps at most THUMBNAIL_SIZES_CACHED sizes cached: ever new sizes do not grow its entry', async () => {
    const cached = new MediaStore(db.knex, blobs, 60_000);
    const sizes = Array.from({ length: THUMBNAIL_SIZES_CACHED + 1 }, (_, i) => (
      { serverName: 'a.example', mediaId: 'm1', width: 100 + i, height: 100, method: 'scale' as const, animated: false }));
    for (const [i, key] of sizes.entries()) await store.insertThumbnail(key, 'image/png', await stage(`size ${i}`));
    for (const key of sizes) expect(await cached.getThumbnail(key)).toBeDefined();
    const queries: string[] = [];
    const onQuery = (query: { sql: string }) => queries.push(query.sql);
    db.knex.on('query', onQuery);
    try {
      expect((await cached.getThumbnail(sizes[1]!))?.width).toBe(101);
      expect((await cached.getThumbnail(sizes.at(-1)!))?.width).toBe(100 + THUMBNAIL_SIZES_CACHED);
      expect(queries).toEqual([]);
      expect((await cached.getThumbnail(sizes[0]!))?.width).toBe(100); // the oldest, dropped for the newest
      expect(queries).toHaveLength(1);
    } finally {
      db.knex.off('query', onQuery);
    }
  });

  test('the same bytes in two datastores are two blobs: rows name theirs, and a discard in one leaves the other', async () => {
    const text = 'stored twice, in two datastores';
    const kept = await other.writeStream(Readable.from([Buffer.from(text)]), { maxBytes: 1000 });
    expect(await store.insertMedia(media('in-other'), kept)).toBe(true);
    expect((await store.get('a.example', 'in-other'))?.datastoreId).toBe('other');
    const dropped = await stage(text);
    expect(await store.insertMedia(media('in-other'), dropped)).toBe(false);
    expect(await storage.has(dropped.sha256)).toBe(false);
    expect(await other.has(kept.sha256)).toBe(true);
    const { deleted } = await blobs.sweepUnreferenced();
    expect(deleted).toBe(0);
    expect(await other.has(kept.sha256)).toBe(true);
  });
});
