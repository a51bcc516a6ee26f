// Starts the service: database and migrations, homeserver key import, then the HTTP listener.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { readSecret, type Config } from './config/config.js';
import type { AppContext } from './context.js';
import { migrateToLatest, openDatabase, type Database } from './db/database.js';
import { createFederationClient } from './federation/outbound.js';
import { createApp } from './http/app.js';
import { Tenants } from './http/tenant.js';
import { MasterKey } from './keys/master-key.js';
import { Keyring } from './keys/keyring.js';
import { SigningKeyStore } from './keys/signing-key-store.js';
import { MediaStore } from './media/media-store.js';
import { withRemoteMedia } from './media/remote.js';
import { FilesystemDatastore } from './storage/filesystem.js';
import type { Logger } from './log.js';

const MAX_KEY_FETCH_MS = 15_000;

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
  const storage = await FilesystemDatastore.open(config.datastores[0]!.opts.path);
  const federation = createFederationClient(config, signingKeys, log);
  const keyring = new Keyring({
    knex: database.knex,
    federation: config.federation,
    // Key fetches go through discovery and the IP filter like every other outbound request.
    fetchServerKeys: federation.fetchServerKeysJson,
    queryNotary: federation.queryNotary,
    // A request waiting on a key fetch holds the peer's connection: keep that wait well below its timeout.
    fetchTimeoutMs: Math.min(config.federation.requestTimeoutMs, MAX_KEY_FETCH_MS),
    log,
  });
  const tenants = new Tenants(config.homeservers);
  return withRemoteMedia({ config, log, db: database, tenants, signingKeys, storage, media: new MediaStore(database.knex, storage), keyring, federation });
}

export async function closeContext(context: AppContext): Promise<void> {
  await context.remoteMedia.close();
  context.federation.close();
  await context.db.close();
}

export async function startService(config: Config, log: Logger, db?: Database): Promise<RunningService> {
  const context = await openContext(config, log, db);
  const server: Server = createApp(context).listen(config.listen.port, config.listen.host);
  // A large upload over a slow link outlives node's default 5-minute request deadline; stalled sockets still close.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.setTimeout(Math.max(120_000, config.media.maxTimeoutMs + 30_000));
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
      await closeContext(context);
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
