// Cache invalidations between instances sharing one database: delivered within a poll, once, including
// a publication whose transaction commits after a later one was already seen.
import { CacheInvalidations, EVERY_KEY } from '../../src/db/cache-invalidations.js';
import type { Database } from '../../src/db/database.js';
import { openTestDatabase } from '../helpers/database.js';

describe('CacheInvalidations', () => {
  let db: Database;
  beforeAll(async () => { db = await openTestDatabase(); });
  afterAll(async () => { await db.close(); });

  test('what one instance publishes reaches the others at their next poll, once; its own cache at once', async () => {
    const here = new CacheInvalidations(db.knex, 60_000);
    const there = new CacheInvalidations(db.knex, 60_000);
    const seenHere: string[] = [];
    const seenThere: string[] = [];
    here.on('media', (key) => seenHere.push(key));
    there.on('media', (key) => seenThere.push(key));
    await db.knex('cache_invalidations').insert({ scope: 'media', key: 'old.example/published-before-start' });
    await here.start();
    await there.start();
    await here.publish(db.knex, 'media', ['a.example/one', 'a.example/two']);
    expect(seenHere).toEqual(['a.example/one', 'a.example/two']);
    expect(seenThere).toEqual([]);
    await there.poll();
    await there.poll();
    expect(seenThere).toEqual(['a.example/one', 'a.example/two']);
    await here.close();
    await there.close();
  });

  test('a publication committed late (after a newer one was delivered) is still delivered', async () => {
    const there = new CacheInvalidations(db.knex, 60_000);
    const seen: string[] = [];
    there.on('media', (key) => seen.push(key));
    await there.start();
    // Row ids come from a sequence: an earlier id can become visible after a later one.
    const [{ id: early }] = await db.knex('cache_invalidations').insert({ scope: 'media', key: 'x' }).returning('id');
    await db.knex('cache_invalidations').where({ id: early }).delete();
    await db.knex('cache_invalidations').insert({ scope: 'media', key: 'a.example/later' });
    await there.poll();
    await db.knex('cache_invalidations').insert({ id: early, scope: 'media', key: 'a.example/committed-late' });
    await there.poll();
    expect(seen).toEqual(['a.example/later', 'a.example/committed-late']);
    await there.close();
  });

  test('a bulk change publishes one row standing for every key, not one row per key', async () => {
    const here = new CacheInvalidations(db.knex, 60_000);
    const there = new CacheInvalidations(db.knex, 60_000);
    const seenThere: string[] = [];
    there.on('media', (key) => seenThere.push(key));
    await here.start();
    await there.start();
    const before = Number((await db.knex('cache_invalidations').count({ n: '*' }))[0]!.n);
    await here.publish(db.knex, 'media', Array.from({ length: 101 }, (_, i) => `a.example/bulk${i}`));
    expect(Number((await db.knex('cache_invalidations').count({ n: '*' }))[0]!.n)).toBe(before + 1);
    await there.poll();
    expect(seenThere).toEqual([EVERY_KEY]);
    await here.close();
    await there.close();
  });
});
