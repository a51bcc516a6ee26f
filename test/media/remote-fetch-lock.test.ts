// The cross-instance fetch lock on a real database: a free key is taken in one statement, without first
// asking which instances live (the query the common case does not need); a held one still is taken over
// at once when its instance is dead, and waited on while it lives.
import type { Database } from '../../src/db/database.js';
import { FetchLock } from '../../src/media/remote-fetch-lock.js';
import { RemoteFetchStore } from '../../src/media/remote-store.js';
import { openTestDatabase } from '../helpers/database.js';

const ALIVE = 'alive-instance';

describe('FetchLock', () => {
  let db: Database;
  let store: RemoteFetchStore;
  let livenessAsked: number;
  beforeAll(async () => {
    db = await openTestDatabase();
    store = new RemoteFetchStore(db.knex);
  });
  afterAll(() => db.close());
  beforeEach(() => {
    livenessAsked = 0;
  });

  function lock(fetchKey: string, owner: string, maxWaitMs = 5000, heartbeatMs = 60_000): FetchLock {
    return new FetchLock(store, fetchKey, owner, {
      heartbeatMs, staleMs: 30_000, maxWaitMs, now: Date.now,
      liveInstances: async () => {
        livenessAsked++;
        return new Set([ALIVE]);
      },
    });
  }

  test('a free key is taken without asking which instances live', async () => {
    const taken = lock('download free.test a', `${ALIVE}/one`);
    expect(await taken.acquireOr(async () => 'found elsewhere')).toBeUndefined();
    expect(livenessAsked).toBe(0);
    expect(await db.knex('remote_fetches').where({ fetch_key: 'download free.test a' }).pluck('owner')).toEqual([`${ALIVE}/one`]);
    await taken.release();
    expect(await db.knex('remote_fetches').where({ fetch_key: 'download free.test a' })).toEqual([]);
  });

  test('a key held by a dead instance, heartbeated just now, is taken over at once', async () => {
    await db.knex('remote_fetches').insert({ fetch_key: 'download free.test b', owner: 'dead-instance/fetch', heartbeat_ts: Date.now() });
    const started = Date.now();
    const taken = lock('download free.test b', `${ALIVE}/two`);
    expect(await taken.acquireOr(async () => 'found elsewhere')).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(livenessAsked).toBe(1);
    await taken.release();
  });

  test('a key held by a live instance is waited on: what `meanwhile` finds is the outcome', async () => {
    await db.knex('remote_fetches').insert({ fetch_key: 'download free.test c', owner: `${ALIVE}/other`, heartbeat_ts: Date.now() });
    let polls = 0;
    const waiting = lock('download free.test c', `${ALIVE}/three`);
    expect(await waiting.acquireOr(async () => (++polls === 3 ? 'found elsewhere' : undefined))).toBe('found elsewhere');
    expect(livenessAsked).toBe(3);
    await waiting.release();
    expect(await db.knex('remote_fetches').where({ fetch_key: 'download free.test c' }).pluck('owner')).toEqual([`${ALIVE}/other`]);
  });

  const heartbeatOf = async (fetchKey: string) => Number(await db.knex('remote_fetches').where({ fetch_key: fetchKey }).first().then((row: { heartbeat_ts: string }) => row.heartbeat_ts));
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  test('a key a live instance stopped heartbeating staleMs ago is taken over at once, without asking which instances live', async () => {
    await db.knex('remote_fetches').insert({ fetch_key: 'download free.test d', owner: `${ALIVE}/stalled`, heartbeat_ts: Date.now() - 31_000 });
    const taken = lock('download free.test d', `${ALIVE}/four`, 300);
    expect(await taken.acquireOr(async () => 'found elsewhere')).toBeUndefined();
    expect(livenessAsked).toBe(0);
    await taken.release();
  });

  test('waiting on a live holder ends at maxWaitMs with 504 M_NOT_YET_UPLOADED, not before', async () => {
    await db.knex('remote_fetches').insert({ fetch_key: 'download free.test e', owner: `${ALIVE}/other`, heartbeat_ts: Date.now() });
    const started = Date.now();
    const error = await lock('download free.test e', `${ALIVE}/five`, 300).acquireOr(async () => undefined).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(error).toMatchObject({ status: 504, errcode: 'M_NOT_YET_UPLOADED' });
  });

  test('the holder heartbeats its row every heartbeatMs while it holds it, and not once released', async () => {
    const owner = `${ALIVE}/six`;
    const held = lock('download free.test f', owner, 5000, 50);
    expect(await held.acquireOr(async () => 'found elsewhere')).toBeUndefined();
    const taken = await heartbeatOf('download free.test f');
    await pause(300);
    expect(await heartbeatOf('download free.test f')).toBeGreaterThan(taken);
    await held.release();
    await db.knex('remote_fetches').insert({ fetch_key: 'download free.test f', owner, heartbeat_ts: 1 });
    await pause(300);
    expect(await heartbeatOf('download free.test f')).toBe(1);
  });

  test('without a list of live instances, a held key is waited on until found', async () => {
    await db.knex('remote_fetches').insert({ fetch_key: 'download free.test g', owner: 'any-instance/fetch', heartbeat_ts: Date.now() });
    const unaware = new FetchLock(store, 'download free.test g', `${ALIVE}/seven`, { heartbeatMs: 60_000, staleMs: 30_000, maxWaitMs: 5000, now: Date.now });
    let polls = 0;
    expect(await unaware.acquireOr(async () => (++polls === 2 ? 'found elsewhere' : undefined))).toBe('found elsewhere');
    await unaware.release();
    expect(await db.knex('remote_fetches').where({ fetch_key: 'download free.test g' }).pluck('owner')).toEqual(['any-instance/fetch']);
  });
});
