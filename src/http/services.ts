// What the routes use, in one type; the composition root (service.ts) builds it.
import type { Config } from '../config/config.js';
import type { Tenants } from '../config/tenants.js';
import type { Database } from '../db/database.js';
import type { KeyLookup } from '../federation/inbound-auth.js';
import type { Logger } from '../log.js';
import type { LocalMedia } from '../media/local-media.js';
import type { MediaStore } from '../media/media-store.js';
import type { Quotas } from '../media/quotas.js';
import type { RemoteMedia } from '../media/remote-media.js';
import type { Thumbnails } from '../media/thumbnails.js';
import type { Uploads } from '../media/uploads.js';
import type { CacheLookups } from '../lru-cache.js';
import type { OutageLog } from './outages.js';
import type { RateLimits } from './rate-limits.js';
import type { HttpObserver } from './request-log.js';
import type { StaticTokens } from './static-tokens.js';
import type { AccessTimes } from '../media/access-times.js';
import type { AdminTasks } from '../media/admin-tasks.js';
import type { AuditLog } from '../media/audit-log.js';
import type { PurgeRequests } from '../media/purge-requests.js';
import type { Quarantine } from '../media/quarantine.js';
import type { Usage } from '../media/usage.js';
import type { AdminAuthSettings } from './admin-auth.js';

/** What the admin API uses. */
export interface AdminParts {
  auth: AdminAuthSettings;
  quarantine: Quarantine;
  purges: PurgeRequests;
  usage: Usage;
  tasks: AdminTasks;
  audit: AuditLog;
  accessTimes: AccessTimes;
}

export interface AppServices {
  config: Config;
  log: Logger;
  db: Pick<Database, 'knex'>;
  tenants: Tenants;
  staticTokens: StaticTokens;
  keyring: KeyLookup;
  media: MediaStore;
  localMedia: LocalMedia;
  uploads: Uploads;
  quotas: Quotas;
  thumbnails: Thumbnails;
  remoteMedia: RemoteMedia;
  limits: RateLimits;
  outages: OutageLog;
  /** Metrics, when enabled. */
  httpObserver?: HttpObserver;
  tokenCacheLookups?: CacheLookups;
  admin: AdminParts;
}
