// Each hosted homeserver's own signing keys, private part encrypted at rest.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('signing_keys', (t) => {
    t.increments('id');
    t.text('server_name').notNullable();
    t.text('key_id').notNullable();
    t.text('public_key').notNullable();
    t.specificType('scope', 'text[]').notNullable();
    // AES-256-GCM under the master key: version byte | nonce | tag | ciphertext.
    t.binary('encrypted_seed').notNullable();
    t.bigInteger('created_ts').notNullable();
    // Null while active; set when a newer key replaced it, as published in old_verify_keys.
    t.bigInteger('expired_ts');
    t.unique(['server_name', 'key_id']);
  });
  await knex.raw('CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (server_name) WHERE expired_ts IS NULL');
}
