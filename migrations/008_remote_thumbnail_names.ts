// Cached remote thumbnails keep the file name their origin gave (its Content-Disposition), as media do.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('remote_thumbnails', (t) => t.text('upload_name'));
}
