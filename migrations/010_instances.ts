// The running instances, so that what a dead one left (staging files, fetch locks) is known to be nobody's.
// An instance holds a session advisory lock on (INSTANCE_LOCK, lock_key) while it lives: its row with no
// such lock held, or with no heartbeat for a while, is a dead instance's.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('instances', (t) => {
    t.text('instance_id').primary();
    t.integer('lock_key').notNullable();
    // The database's clock, as every instance reads the same one.
    t.bigInteger('started_ts').notNullable();
    t.bigInteger('heartbeat_ts').notNullable();
  });
}
