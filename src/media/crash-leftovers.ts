// What dead instances left behind (a crash, kill -9): staged bytes and unfinished uploads in every
// datastore, remote fetch locks, their instance rows, and bytes of purged rows still listed for release.
// Removed at start-up and by `storage sweep`, at once and safely beside live instances: only what no live
// instance owns goes, and a listed blob only while no row references it.
import type { Knex } from 'knex';
import type { Instances } from '../db/instances.js';
import type { Logger } from '../log.js';
import type { StagingSweep } from '../storage/datastore.js';
import type { Datastores } from '../storage/datastores.js';
import { sweepStaging, UNNAMED_STAGING_MS } from '../storage/staging.js';
import type { Purge } from './purge.js';
import { RemoteFetchStore } from './remote-store.js';

export interface LeftoversRemoved {
  /** Per datastore id. */
  staging: Map<string, StagingSweep>;
  locks: number;
  instances: number;
  /** Blobs of purged rows released (a purge dies between deleting rows and releasing their bytes). */
  released: number;
}

interface LeftoverDeps {
  knex: Knex;
  datastores: Datastores;
  instances: Instances;
  jobs: { purge: Pick<Purge, 'releasePending'> };
}

export async function removeCrashLeftovers(deps: LeftoverDeps, unnamedOlderThanMs: number): Promise<LeftoversRemoved> {
  const staging = new Map<string, StagingSweep>();
  const owners = { live: () => deps.instances.live(), unnamedOlderThanMs };
  for (const store of deps.datastores.all()) staging.set(store.id, await sweepStaging(store, owners));
  const live = await deps.instances.live();
  const locks = await new RemoteFetchStore(deps.knex).deleteLocksOfDead(live);
  return { staging, locks, instances: await deps.instances.forgetDead(live), released: await deps.jobs.purge.releasePending() };
}

/** At start-up; a datastore down now is swept at the next start or by `storage sweep`. */
export async function removeLeftoversAtStart(deps: LeftoverDeps & { log: Logger }): Promise<void> {
  try {
    const removed = await removeCrashLeftovers(deps, UNNAMED_STAGING_MS);
    const staged = [...removed.staging.values()].reduce((n, s) => n + s.staged + s.uploads, 0);
    if (staged + removed.locks + removed.released > 0) {
      deps.log.info({ staged, locks: removed.locks, instances: removed.instances, released: removed.released }, 'removed what crashed instances left behind');
    }
  } catch (err) {
    deps.log.warn({ err }, 'removing what crashed instances left behind failed; storage sweep does it too');
  }
}
