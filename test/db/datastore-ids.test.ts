// Migration 005: rows stored before datastores had names point at the one datastore there was.
import { migrationSource } from '../../src/db/migrations.js';
import type { Database } from '../../src/db/database.js';
import { openBlankTestDatabase } from '../helpers/database.js';

const SHA = 'ab'.repeat(32);

describe('migration 005_datastore_ids', () => {
  let db: Database;
  beforeAll(async () => {
    db = await openBlankTestDatabase();
    // Up to 004, as a deployment from before datastore ids has it.
    for (let i = 0; i < 4; i++) await db.knex.migrate.up({ migrationSource });
  });
  afterAll(async () => { await db.close(); });

  test('fills "default" for stored rows, leaves pending uploads without a datastore, and enforces the pairing', async () => {
    const thumb = { server_name: 'a.example', media_id: 'm1', width: 32, height: 32, method: 'crop', animated: false, content_type: 'image/png', sha256: SHA, size: 1, created_ts: 1 };
    await db.knex('media').insert([
      { server_name: 'a.example', media_id: 'm1', is_remote: false, user_id: '@a:a.example', content_type: 'text/plain', sha256: SHA, size: 1, created_ts: 1, stored_ts: 1 },
      { server_name: 'a.example', media_id: 'pending', is_remote: false, user_id: '@a:a.example', created_ts: 1, expires_ts: 2 },
    ]);
    await db.knex('thumbnails').insert(thumb);
    await db.knex('remote_thumbnails').insert({ ...thumb, server_name: 'remote.example' });

    await db.knex.migrate.up({ migrationSource });

    const media = await db.knex('media').select('media_id', 'datastore_id').orderBy('media_id');
    expect(media).toEqual([{ media_id: 'm1', datastore_id: 'default' }, { media_id: 'pending', datastore_id: null }]);
    expect(await db.knex('thumbnails').pluck('datastore_id')).toEqual(['default']);
    expect(await db.knex('remote_thumbnails').pluck('datastore_id')).toEqual(['default']);
    // A row with bytes must name their datastore, and a pending one cannot.
    await expect(db.knex('media').insert({
      server_name: 'a.example', media_id: 'm2', is_remote: false, content_type: 'text/plain', sha256: SHA, size: 1, created_ts: 1, stored_ts: 1,
    })).rejects.toThrow(/media_datastore_with_bytes/);
    await expect(db.knex('thumbnails').insert({ ...thumb, width: 64 })).rejects.toThrow(/datastore_id/);
  });
});
