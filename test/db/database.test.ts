import { migrateToLatest, type Database } from '../../src/db/database.js';
import { openBlankTestDatabase, REAL_POSTGRES_URL } from '../helpers/database.js';

describe(`database (${REAL_POSTGRES_URL ? 'PostgreSQL' : 'embedded PGlite'})`, () => {
  let db: Database;
  beforeAll(async () => { db = await openBlankTestDatabase(); });
  afterAll(async () => { await db.close(); });

  test('migrations apply once and then are up to date', async () => {
    expect((await migrateToLatest(db.knex)).length).toBeGreaterThan(0);
    expect(await migrateToLatest(db.knex)).toEqual([]);
    expect(await db.knex.schema.hasTable('signing_keys')).toBe(true);
  });

  test('values come back with the same JavaScript types on both databases', async () => {
    const { rows } = await db.knex.raw(
      "SELECT 9007199254740991::bigint AS big, 7::int AS int, ARRAY['m.requests']::text[] AS arr, '\\x00ff'::bytea AS bin, true AS flag, 'x'::text AS txt, NULL::bigint AS nothing",
    );
    expect(rows[0]).toEqual({ big: 9007199254740991, int: 7, arr: ['m.requests'], bin: Buffer.from([0, 255]), flag: true, txt: 'x', nothing: null });
  });

  test('a failed transaction leaves nothing behind', async () => {
    await db.knex.schema.createTable('tx_probe', (t) => t.text('v').primary());
    await expect(db.knex.transaction(async (trx) => {
      await trx('tx_probe').insert({ v: 'a' });
      await trx('tx_probe').insert({ v: 'a' });
    })).rejects.toThrow(/duplicate key/);
    expect(await db.knex('tx_probe').count({ n: '*' })).toEqual([{ n: 0 }]);
  });
});
