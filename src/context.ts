// What every flow needs, built once at start and handed down.
import type { Config } from './config/config.js';
import type { Database } from './db/database.js';
import type { Tenants } from './http/tenant.js';
import type { SigningKeyStore } from './keys/signing-key-store.js';
import type { Logger } from './log.js';

export interface AppContext {
  config: Config;
  log: Logger;
  db: Database;
  tenants: Tenants;
  signingKeys: SigningKeyStore;
}
