// Media metadata (local uploads, pending async uploads, cached remote media) and generated thumbnails.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('media', (t) => {
    t.text('server_name').notNullable();
    t.text('media_id').notNullable();
    t.primary(['server_name', 'media_id']);
    t.boolean('is_remote').notNullable().defaultTo(false);
    // The uploader (or the /create caller); null for remote media.
    t.text('user_id');
    t.text('content_type');
    t.text('upload_name');
    // Null while a /create'd upload is pending.
    t.text('sha256');
    t.bigInteger('size');
    t.bigInteger('created_ts').notNullable();
    // When the bytes arrived (upload, or remote cache populated): the legacy freeze compares this.
    t.bigInteger('stored_ts');
    // Deadline of a pending upload.
    t.bigInteger('expires_ts');
    t.index(['sha256'], 'media_sha256');
  });
  await knex.raw(`ALTER TABLE media ADD CONSTRAINT media_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$')`);
  await knex.raw(`ALTER TABLE media ADD CONSTRAINT media_content_complete
    CHECK ((sha256 IS NULL) = (size IS NULL) AND (sha256 IS NULL) = (stored_ts IS NULL))`);
  await knex.raw('CREATE INDEX media_pending_by_user ON media (server_name, user_id, expires_ts) WHERE sha256 IS NULL');

  await knex.schema.createTable('thumbnails', (t) => {
    t.text('server_name').notNullable();
    t.text('media_id').notNullable();
    t.integer('width').notNullable();
    t.integer('height').notNullable();
    t.text('method').notNullable();
    t.boolean('animated').notNullable();
    t.primary(['server_name', 'media_id', 'width', 'height', 'method', 'animated']);
    t.foreign(['server_name', 'media_id']).references(['server_name', 'media_id']).inTable('media').onDelete('CASCADE');
    t.text('content_type').notNullable();
    t.text('sha256').notNullable();
    t.bigInteger('size').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.index(['sha256'], 'thumbnails_sha256');
  });
  await knex.raw(`ALTER TABLE thumbnails ADD CONSTRAINT thumbnails_method CHECK (method IN ('crop', 'scale'))`);
  await knex.raw(`ALTER TABLE thumbnails ADD CONSTRAINT thumbnails_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$')`);
}
