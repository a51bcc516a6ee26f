// Administration: quarantine flags (kept when the media row is purged, so it is never fetched again),
// last access times, which hosted homeserver fetched each remote media, blobs awaiting release, admin
// tasks with a lease, job leases (one instance runs retention), and the audit log.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('quarantined_media', (t) => {
    t.text('server_name').notNullable();
    t.text('media_id').notNullable();
    t.primary(['server_name', 'media_id']);
    t.bigInteger('quarantined_ts').notNullable();
    t.text('quarantined_by').notNullable();
  });

  // Written in batches by AccessTimes; null: never downloaded since this column exists.
  await knex.schema.alterTable('media', (t) => t.bigInteger('last_access_ts'));
  await knex.raw('CREATE INDEX media_remote_by_access ON media (COALESCE(last_access_ts, stored_ts)) WHERE is_remote');
  await knex.raw('CREATE INDEX media_local_by_user ON media (server_name, user_id, created_ts) WHERE NOT is_remote');

  // A homeserver's admins may act on remote media their users fetched.
  await knex.schema.createTable('remote_media_fetchers', (t) => {
    t.text('server_name').notNullable();
    t.text('media_id').notNullable();
    t.text('homeserver').notNullable();
    t.primary(['server_name', 'media_id', 'homeserver']);
    t.index(['homeserver'], 'remote_media_fetchers_homeserver');
  });

  // Written in the transaction that deletes a blob's rows: a crash before the bytes go leaves them listed here.
  await knex.schema.createTable('blob_releases', (t) => {
    t.text('datastore_id').notNullable();
    t.text('sha256').notNullable();
    t.primary(['datastore_id', 'sha256']);
  });

  await knex.schema.createTable('admin_tasks', (t) => {
    t.increments('task_id');
    t.text('task_name').notNullable();
    t.jsonb('params').notNullable();
    // The homeserver an admin of which started it; null: a provider-wide admin.
    t.text('scope');
    t.text('created_by').notNullable();
    t.bigInteger('start_ts').notNullable();
    t.bigInteger('end_ts');
    t.text('error_message');
    t.jsonb('progress').notNullable();
    t.jsonb('result');
    // The lease: the instance running it heartbeats; a silent owner loses it to another instance.
    t.text('owner');
    t.bigInteger('heartbeat_ts');
  });
  await knex.raw('CREATE INDEX admin_tasks_unfinished ON admin_tasks (task_id) WHERE end_ts IS NULL');

  await knex.schema.createTable('job_leases', (t) => {
    t.text('job').primary();
    t.text('owner').notNullable();
    t.bigInteger('heartbeat_ts').notNullable();
  });

  await knex.schema.createTable('admin_audit', (t) => {
    t.increments('id');
    t.bigInteger('ts').notNullable();
    // A user ID, or "admin token" / "cli": never a token.
    t.text('actor').notNullable();
    t.text('scope');
    t.text('action').notNullable();
    t.text('target').notNullable();
    t.integer('count').notNullable();
    t.bigInteger('bytes').notNullable();
    t.boolean('dry_run').notNullable();
    t.integer('task_id');
    t.index(['scope', 'id'], 'admin_audit_by_scope');
  });
}
