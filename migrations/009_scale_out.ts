// Many instances on one database: cache invalidations every instance polls, and blob deletions that
// wait until every instance has stopped reading the old copy (datastore transfers).
import type { Knex } from 'knex';

const NOW_MS = `(floor(extract(epoch from clock_timestamp()) * 1000))::bigint`;

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('cache_invalidations', (t) => {
    t.bigIncrements('id');
    t.text('scope').notNullable();
    t.text('key').notNullable();
    // The database's clock, not an instance's: instances compare it with their own reads of it.
    t.bigInteger('created_ts').notNullable().defaultTo(knex.raw(NOW_MS));
    t.index(['created_ts'], 'cache_invalidations_created_ts');
  });
  // A blob copy to delete once unreferenced, not before not_before_ts; kept until deleted, so a killed
  // transfer leaves a to-do, never an orphan.
  await knex.schema.createTable('pending_blob_deletions', (t) => {
    t.text('datastore_id').notNullable();
    t.text('sha256').notNullable();
    t.bigInteger('not_before_ts').notNullable();
    t.primary(['datastore_id', 'sha256']);
  });
}
