// Every row that points at stored bytes names the datastore holding them, so bytes can live in several
// datastores (filesystem, S3) and move between them. Rows stored before this lived in the one datastore
// there was, which the default config calls "default".
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  for (const table of ['thumbnails', 'remote_thumbnails']) {
    await knex.schema.alterTable(table, (t) => t.text('datastore_id'));
    await knex(table).update({ datastore_id: 'default' });
    await knex.raw(`ALTER TABLE ${table} ALTER COLUMN datastore_id SET NOT NULL`);
  }
  // A pending async upload has no bytes yet, so no datastore either.
  await knex.schema.alterTable('media', (t) => t.text('datastore_id'));
  await knex('media').whereNotNull('sha256').update({ datastore_id: 'default' });
  await knex.raw('ALTER TABLE media ADD CONSTRAINT media_datastore_with_bytes CHECK ((sha256 IS NULL) = (datastore_id IS NULL))');
}
