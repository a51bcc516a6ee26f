// Quotas sum a user's (and a homeserver's) stored uploads on every upload; this index keeps that a range scan.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE INDEX media_uploads_by_user ON media (server_name, user_id, created_ts) INCLUDE (size) WHERE NOT is_remote AND sha256 IS NOT NULL');
}
