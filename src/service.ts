// Starts the service: database and migrations, homeserver key import, then the HTTP listener.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { readSecret, type Config } from './config/config.js';
import type { AppContext } from './context.js';
import { migrateToLatest, openDatabase, type Database } from './db/database.js';
import { createApp } from './http/app.js';
import { Tenants } from './http/tenant.js';
import { MasterKey } from './keys/master-key.js';
import { SigningKeyStore } from './keys/signing-key-store.js';
import type { Logger } from './log.js';

export interface RunningService {
  url: string;
  context: AppContext;
  close(): Promise<void>;
}

export async function openContext(config: Config, log: Logger, db?: Database): Promise<AppContext> {
  const database = db ?? (await openDatabase({
    url: config.database.url === undefined ? undefined : readSecret(config.database.url, 'database.url'),
    dataDir: config.dataDir,
    poolMax: config.database.poolMax,
  }));
  const applied = await migrateToLatest(database.knex);
  if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');
  const signingKeys = new SigningKeyStore(database.knex, loadMasterKey(config, log));
  for (const hs of config.homeservers) {
    if (!hs.signingKeyPath) {
      log.warn({ homeserver: hs.name }, 'no signingKeyPath: remote media can only be fetched over the legacy unauthenticated endpoints');
      continue;
    }
    const outcome = await signingKeys.importKeyFile(hs.name, hs.signingKeyPath);
    const key = await signingKeys.activeKey(hs.name);
    log.info({ homeserver: hs.name, keyId: key?.keyId, outcome }, 'signing key ready');
  }
  return { config, log, db: database, tenants: new Tenants(config.homeservers), signingKeys };
}

export async function startService(config: Config, log: Logger, db?: Database): Promise<RunningService> {
  const context = await openContext(config, log, db);
  const server: Server = createApp(context).listen(config.listen.port, config.listen.host);
  await once(server, 'listening');
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  log.info({ url, homeservers: config.homeservers.map((hs) => hs.name), embeddedDatabase: context.db.embedded }, 'listening');
  return {
    url,
    context,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await context.db.close();
    },
  };
}

function loadMasterKey(config: Config, log: Logger): MasterKey {
  if (config.masterKey !== undefined) return MasterKey.load(config.masterKey);
  const file = join(config.dataDir, 'master.key');
  const { key, created } = MasterKey.loadOrCreateFile(file);
  if (created) log.warn({ file }, 'no masterKey configured: created one; back it up, signing keys cannot be decrypted without it');
  return key;
}
