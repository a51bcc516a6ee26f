// The remote-fetch tables on a real database, statement by statement: who may take a lock row, which rows
// are stale or a dead instance's, that a holder only ever touches its own row, and the cached remote thumbnails.
import { createHash } from 'node:crypto';
import type { Database } from '../../src/db/database.js';
import { RemoteFetchStore } from '../../src/media/remote-store.js';
import type { StagedBlob } from '../../src/storage/datastore.js';
import { openTestDatabase } from '../helpers/database.js';

const NOW = 5_000_000;
const STALE_BEFORE = NOW - 30_000;
const LIVE = new Set(['live-a', 'live-b']);

let db: Database;
let store: RemoteFetchStore;
beforeAll(async () => {
  db = await openTestDatabase();
  store = new RemoteFetchStore(db.knex);
});
afterAll(() => db.close());
beforeEach(() => db.knex('remote_fetches').delete());

const holder = async (fetchKey: string) => (await db.knex('remote_fetches').where({ fetch_key: fetchKey }).first()) as { owner: string; heartbeat_ts: string } | undefined;
const hold = (fetchKey: string, owner: string, heartbeatTs: number) => db.knex('remote_fetches').insert({ fetch_key: fetchKey, owner, heartbeat_ts: heartbeatTs });

describe('the fetch lock rows', () => {
  test('a free key is taken; a held one is not, unless its heartbeat is older than staleBefore', async () => {
    expect(await store.tryLock('free', 'live-a/1', NOW, STALE_BEFORE)).toBe(true);
    expect(await holder('free')).toEqual({ fetch_key: 'free', owner: 'live-a/1', heartbeat_ts: expect.anything() });
    expect(Number((await holder('free'))!.heartbeat_ts)).toBe(NOW);
    expect(await store.tryLock('free', 'live-b/2', NOW, STALE_BEFORE)).toBe(false);
    expect((await holder('free'))!.owner).toBe('live-a/1');

    await hold('at-the-limit', 'live-a/3', STALE_BEFORE);
    expect(await store.tryLock('at-the-limit', 'live-b/4', NOW, STALE_BEFORE)).toBe(false);
    await hold('stale', 'live-a/5', STALE_BEFORE - 1);
    expect(await store.tryLock('stale', 'live-b/6', NOW, STALE_BEFORE)).toBe(true);
    expect(await holder('stale')).toMatchObject({ owner: 'live-b/6' });
    expect(Number((await holder('stale'))!.heartbeat_ts)).toBe(NOW);
  });

  test('given the live instances, a fresh row of a dead one is taken over and a live one\'s is not', async () => {
    await hold('dead', 'dead-c/1', NOW);
    await hold('alive', 'live-b/2', NOW);
    expect(await store.tryLock('dead', 'live-a/3', NOW, STALE_BEFORE, LIVE)).toBe(true);
    expect((await holder('dead'))!.owner).toBe('live-a/3');
    expect(await store.tryLock('alive', 'live-a/4', NOW, STALE_BEFORE, LIVE)).toBe(false);
    expect(await store.tryLock('fresh', 'live-a/5', NOW, STALE_BEFORE, LIVE)).toBe(true);
    // Quotes and backslashes in an instance id (ids are uuids) are dropped: they cannot break the array literal.
    await hold('quoted', 'live-b/6', NOW);
    expect(await store.tryLock('quoted', 'live-a/7', NOW, STALE_BEFORE, new Set(['"live-\\b"']))).toBe(false);
    expect(await store.tryLock('quoted', 'live-a/7', NOW, STALE_BEFORE, new Set(['"live-\\a"']))).toBe(true);
  });

  test('staleLocks lists the dead instances\' rows and the silent ones, in key order; deleteLocksOfDead drops only the dead\'s', async () => {
    await hold('d-silent', 'live-a/1', STALE_BEFORE - 1);
    await hold('c-fresh', 'live-a/2', NOW);
    await hold('b-dead', 'dead-c/3', NOW);
    await hold('a-at-limit', 'live-b/4', STALE_BEFORE);
    expect(await store.staleLocks(LIVE, STALE_BEFORE)).toEqual([
      { fetchKey: 'b-dead', owner: 'dead-c/3' },
      { fetchKey: 'd-silent', owner: 'live-a/1' },
    ]);
    expect(await store.deleteLocksOfDead(LIVE)).toBe(1);
    expect((await db.knex('remote_fetches').orderBy('fetch_key').pluck('fetch_key'))).toEqual(['a-at-limit', 'c-fresh', 'd-silent']);
    expect(await store.deleteLocksOfDead(new Set())).toBe(3);
  });

  test('a holder heartbeats and unlocks only its own row: not one taken over by another', async () => {
    await hold('key', 'live-a/1', NOW - 10);
    expect(await store.heartbeat('key', 'live-a/1', NOW)).toBe(true);
    expect(Number((await holder('key'))!.heartbeat_ts)).toBe(NOW);
    expect(await store.heartbeat('key', 'live-a/other', NOW + 5)).toBe(false);
    await store.unlock('key', 'live-a/other');
    expect(Number((await holder('key'))!.heartbeat_ts)).toBe(NOW);
    await store.unlock('key', 'live-a/1');
    expect(await holder('key')).toBeUndefined();
  });
});

describe('the failure rows', () => {
  test('a failure is had until it expires, replaced by the next, and cleared without touching another media\'s', async () => {
    await store.putFailure('f', { status: 502, errcode: 'M_UNKNOWN', error: 'first' }, NOW);
    expect(await store.getFailure('f', NOW - 1)).toEqual({ status: 502, errcode: 'M_UNKNOWN', error: 'first' });
    expect(await store.getFailure('f', NOW)).toBeUndefined();
    await store.putFailure('f', { status: 404, errcode: 'M_NOT_FOUND', error: 'second' }, NOW + 10);
    expect(await store.getFailure('f', NOW)).toEqual({ status: 404, errcode: 'M_NOT_FOUND', error: 'second' });
    expect(await store.getFailure('other', 0)).toBeUndefined();
    await store.putFailure('g', { status: 502, errcode: 'M_UNKNOWN', error: 'another media' }, NOW + 10);
    await store.clearFailure('f');
    expect(await store.getFailure('f', 0)).toBeUndefined();
    expect(await store.getFailure('g', 0)).toEqual({ status: 502, errcode: 'M_UNKNOWN', error: 'another media' });
  });

  test('purging drops the failures expired by then, and only those', async () => {
    await store.putFailure('p1', { status: 502, errcode: 'M_UNKNOWN', error: 'old' }, NOW - 1);
    await store.putFailure('p2', { status: 502, errcode: 'M_UNKNOWN', error: 'just expired' }, NOW);
    await store.putFailure('p3', { status: 502, errcode: 'M_UNKNOWN', error: 'still had' }, NOW + 1);
    expect(await store.purgeExpiredFailures(NOW)).toBe(2);
    expect(await db.knex('remote_fetch_failures').whereIn('fetch_key', ['p1', 'p2', 'p3']).pluck('fetch_key')).toEqual(['p3']);
  });
});

describe('the remote thumbnail rows', () => {
  const blob = (text: string): StagedBlob => ({
    datastoreId: 'default', sha256: createHash('sha256').update(text).digest('hex'), size: text.length, publish: async () => {}, commit: async () => {}, discard: async () => {},
  });
  const key = { serverName: 'remote.test', mediaId: 'thumbed', width: 32, height: 24, method: 'scale' as const, animated: false };

  test('the first insert of a size wins, with its type, name and bytes; another size is a row of its own', async () => {
    expect(await store.getThumbnail(key)).toBeUndefined();
    expect(await db.knex.transaction((trx) => store.insertThumbnail(trx, key, 'image/png', 'thumb.png', blob('first'), NOW))).toBe(true);
    expect(await db.knex.transaction((trx) => store.insertThumbnail(trx, key, 'image/jpeg', null, blob('second'), NOW + 1))).toBe(false);
    expect(await store.getThumbnail(key)).toEqual({
      ...key, contentType: 'image/png', uploadName: 'thumb.png', datastoreId: 'default', sha256: blob('first').sha256, size: 5, createdTs: NOW,
    });
    const animated = { ...key, animated: true };
    expect(await db.knex.transaction((trx) => store.insertThumbnail(trx, animated, 'image/gif', null, blob('third'), NOW))).toBe(true);
    expect(await store.getThumbnail(animated)).toMatchObject({ contentType: 'image/gif', uploadName: null, sha256: blob('third').sha256 });
  });
});
