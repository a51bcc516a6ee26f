// Migrations are imported, not found on disk, so the same list runs from the compiled build and under jest.
import type { Knex } from 'knex';
import * as signingKeys from '../../migrations/001_signing_keys.js';
import * as media from '../../migrations/002_media.js';
import * as remoteKeys from '../../migrations/003_remote_keys.js';
import * as remoteMedia from '../../migrations/004_remote_media.js';
import * as datastoreIds from '../../migrations/005_datastore_ids.js';
import * as admin from '../../migrations/006_admin.js';
import * as quotas from '../../migrations/007_quotas.js';
import * as remoteThumbnailNames from '../../migrations/008_remote_thumbnail_names.js';
import * as scaleOut from '../../migrations/009_scale_out.js';
import * as instances from '../../migrations/010_instances.js';

interface Migration { up(knex: Knex): Promise<void> }

const migrations: Array<[string, Migration]> = [
  ['001_signing_keys', signingKeys], ['002_media', media], ['003_remote_keys', remoteKeys], ['004_remote_media', remoteMedia],
  ['005_datastore_ids', datastoreIds], ['006_admin', admin], ['007_quotas', quotas],
  ['008_remote_thumbnail_names', remoteThumbnailNames],
  ['009_scale_out', scaleOut],
  ['010_instances', instances],
];

export const migrationSource: Knex.MigrationSource<[string, Migration]> = {
  getMigrations: async () => migrations,
  getMigrationName: ([name]) => name,
  // knex insists on a down(); ours are forward only.
  getMigration: async ([name, { up }]) => ({
    up,
    down: async () => { throw new Error(`migration ${name} is forward only`); },
  }),
};
