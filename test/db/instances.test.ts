// Instance liveness on the test database: a registered instance is alive until it closes; on PostgreSQL a
// row whose lock nobody holds (its process died) is dead at once, however fresh its heartbeat, and so is
// one whose heartbeat is stale though its lock shows.
import { randomUUID } from 'node:crypto';
import type { Database } from '../../src/db/database.js';
import { INSTANCE_LOCK, Instances } from '../../src/db/instances.js';
import { openTestDatabase, REAL_POSTGRES_URL } from '../helpers/database.js';

const NOW_MS = `(floor(extract(epoch from clock_timestamp()) * 1000))::bigint`;

describe('instances', () => {
  let db: Database;
  beforeAll(async () => { db = await openTestDatabase(); });
  afterAll(async () => { await db.close(); });

  test('registered instances are alive, each sees the other; a closed one is not', async () => {
    const a = await Instances.register(db, () => undefined);
    const b = await Instances.register(db, () => undefined);
    expect(a.id).not.toBe(b.id);
    expect([...(await a.live())].sort()).toEqual([a.id, b.id].sort());
    await b.close();
    expect([...(await a.live())]).toEqual([a.id]);
    await a.close();
  });

  (REAL_POSTGRES_URL ? test : test.skip)('PostgreSQL: no lock held is dead at once; a stale heartbeat is dead though locked; forgetDead keeps the live', async () => {
    const a = await Instances.register(db, () => undefined);
    const crashed = randomUUID();
    await db.knex.raw(`INSERT INTO instances VALUES (?, 12345, ${NOW_MS}, ${NOW_MS})`, [crashed]);
    // A session that holds its lock but stopped heartbeating (a hung host).
    const hung = randomUUID();
    const session = await db.connectSession!();
    await session.query('SELECT pg_advisory_lock($1, 777)', [INSTANCE_LOCK]);
    await db.knex.raw(`INSERT INTO instances VALUES (?, 777, 0, ${NOW_MS} - 61000)`, [hung]);
    try {
      const live = await a.live();
      expect([...live]).toEqual([a.id]);
      expect(await a.forgetDead(live)).toBe(2);
      expect(await db.knex('instances').pluck('instance_id')).toEqual([a.id]);
    } finally {
      await session.end();
      await a.close();
    }
    expect(await db.knex('instances').count<{ c: number }[]>({ c: '*' })).toEqual([{ c: 0 }]);
  });

  (REAL_POSTGRES_URL ? test : test.skip)('PostgreSQL: an instance whose session dropped locks again and is alive at its next heartbeat', async () => {
    const a = await Instances.register(db, () => undefined, { heartbeatMs: 100, staleMs: 60_000 });
    const observer = await Instances.register(db, () => undefined);
    try {
      const { rows } = await db.knex.raw<{ rows: Array<{ pid: number }> }>(
        `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = ? AND objid::bigint = (SELECT lock_key FROM instances WHERE instance_id = ?)`, [INSTANCE_LOCK, a.id]);
      await db.knex.raw('SELECT pg_terminate_backend(?)', [rows[0]!.pid]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      let seen = await observer.live();
      for (let i = 0; i < 100 && !seen.has(a.id); i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        seen = await observer.live();
      }
      expect(seen.has(a.id)).toBe(true);
    } finally {
      await a.close();
      await observer.close();
    }
  });
});
