// Remote media fetching: thumbnails fetched from origin servers, who is fetching what right now (one
// upstream request across instances), and recent failures (not retried before expires_ts).
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Remote originals live in `media` (is_remote); their thumbnails, asked of the origin, here.
  await knex.schema.createTable('remote_thumbnails', (t) => {
    t.text('server_name').notNullable();
    t.text('media_id').notNullable();
    t.integer('width').notNullable();
    t.integer('height').notNullable();
    t.text('method').notNullable();
    t.boolean('animated').notNullable();
    t.primary(['server_name', 'media_id', 'width', 'height', 'method', 'animated']);
    t.text('content_type').notNullable();
    t.text('sha256').notNullable();
    t.bigInteger('size').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.index(['sha256'], 'remote_thumbnails_sha256');
  });
  await knex.raw(`ALTER TABLE remote_thumbnails ADD CONSTRAINT remote_thumbnails_method CHECK (method IN ('crop', 'scale'))`);
  await knex.raw(`ALTER TABLE remote_thumbnails ADD CONSTRAINT remote_thumbnails_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$')`);

  // A lock row per fetch in progress; a holder that stops heartbeating loses it.
  await knex.schema.createTable('remote_fetches', (t) => {
    t.text('fetch_key').primary();
    t.text('owner').notNullable();
    t.bigInteger('heartbeat_ts').notNullable();
  });

  await knex.schema.createTable('remote_fetch_failures', (t) => {
    t.text('fetch_key').primary();
    t.integer('status').notNullable();
    t.text('errcode').notNullable();
    t.text('error').notNullable();
    t.bigInteger('expires_ts').notNullable();
  });
}
