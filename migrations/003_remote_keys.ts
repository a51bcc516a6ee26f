// Public keys of remote servers, as fetched from them or from a notary, for verifying X-Matrix requests.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('remote_server_keys', (t) => {
    t.text('server_name').notNullable();
    // false: from /_matrix/key/v2/server (X-Matrix); true: from the MSC4100 endpoint (X-MSC4100-Scoped).
    t.boolean('scoped').notNullable();
    t.text('key_id').notNullable();
    t.text('public_key').notNullable();
    // MSC4100 scopes of the key; null for keys of the v2 endpoint, which have none.
    t.specificType('scopes', 'text[]');
    // Already capped at fetch time + 7 days, as the spec requires.
    t.bigInteger('valid_until_ts').notNullable();
    // Set for keys listed in old_verify_keys: those never authenticate requests.
    t.bigInteger('expired_ts');
    t.bigInteger('fetched_ts').notNullable();
    // "direct" or the notary's server name, for operators tracing where a key came from.
    t.text('source').notNullable();
    t.primary(['server_name', 'scoped', 'key_id']);
  });
}
