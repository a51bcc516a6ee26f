// The composition of the admin parts (part of the composition root, split out to keep service.ts short):
// access times, quarantine, purge, usage, tasks, retention and the audit log, with their secrets read here
// so that a missing one fails the start.
import type { Knex } from 'knex';
import { readSecret, type Config } from './config/config.js';
import type { CacheInvalidations } from './db/cache-invalidations.js';
import type { AdminParts } from './http/services.js';
import type { Logger } from './log.js';
import { AccessTimes } from './media/access-times.js';
import { AdminTasks } from './media/admin-tasks.js';
import { AuditLog } from './media/audit-log.js';
import type { BlobReferences } from './media/blob-references.js';
import type { MediaStore } from './media/media-store.js';
import { Purge } from './media/purge.js';
import { PurgeRequests } from './media/purge-requests.js';
import { Quarantine } from './media/quarantine.js';
import { Retention } from './media/retention.js';
import { Usage } from './media/usage.js';

export interface AdminJobs {
  purge: Purge;
  retention: Retention;
  /** Starts the task runner, retention and access-time flushes (serving instances only; the CLI runs what it needs). */
  start(): void;
  close(): Promise<void>;
}

export function buildAdmin(config: Config, knex: Knex, media: MediaStore, blobs: BlobReferences, invalidations: CacheInvalidations, log: Logger): { admin: AdminParts; jobs: AdminJobs } {
  const hosted = config.homeservers.map((hs) => hs.name);
  const audit = new AuditLog(knex);
  const accessTimes = new AccessTimes(knex, log);
  const purge = new Purge(knex, media, blobs, hosted, invalidations);
  const tasks = new AdminTasks(knex, { heartbeatMs: config.admin.taskHeartbeatMs, staleMs: config.admin.taskStaleMs }, log);
  const retention = new Retention(knex, purge, audit, config.retention, config.homeservers, log, { leaseStaleMs: config.admin.taskStaleMs });
  const adminApiTokens = new Map<string, string>();
  for (const hs of config.homeservers) {
    if (hs.adminApiToken !== undefined) adminApiTokens.set(hs.name, readSecret(hs.adminApiToken, `homeservers[${hs.name}].adminApiToken`));
  }
  const token = config.sharedSecretAuth.token;
  const admin: AdminParts = {
    auth: {
      admins: config.admins,
      sharedSecret: token === undefined ? undefined : readSecret(token, 'sharedSecretAuth.token'),
      adminApiTokens,
      adminCheckCacheMs: config.admin.adminCheckCacheMs,
      timeoutMs: config.auth.whoamiTimeoutMs,
    },
    quarantine: new Quarantine(knex, media, hosted, audit, invalidations),
    purges: new PurgeRequests(purge, tasks, audit, config.admin.syncPurgeLimit),
    usage: new Usage(knex, hosted),
    tasks,
    audit,
    accessTimes,
  };
  return {
    admin,
    jobs: {
      purge,
      retention,
      start: () => {
        accessTimes.start(config.admin.accessFlushMs);
        tasks.start();
        retention.start();
      },
      close: async () => {
        await retention.close();
        await tasks.close();
      },
    },
  };
}
