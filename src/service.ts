// The composition root: builds every part once, in order, each with only what it needs, and starts the
// HTTP listener. Nothing else constructs services.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { readSecret, type Config } from './config/config.js';
import { Tenants } from './config/tenants.js';
import { CacheInvalidations } from './db/cache-invalidations.js';
import { migrateToLatest, openDatabase, type Database } from './db/database.js';
import type { FederationClient } from './federation/client.js';
import { createFederationClient } from './federation/outbound.js';
import { createApp } from './http/app.js';
import type { AppServices } from './http/services.js';
import { Keyring } from './keys/keyring.js';
import { MasterKey } from './keys/master-key.js';
import { SigningKeyStore } from './keys/signing-key-store.js';
import type { Logger } from './log.js';
import { BlobReferences } from './media/blob-references.js';
import { LocalMedia } from './media/local-media.js';
import { MediaStore } from './media/media-store.js';
import { RemoteMedia } from './media/remote-media.js';
import { Thumbnails } from './media/thumbnails.js';
import { Uploads } from './media/uploads.js';
import { Datastores } from './storage/datastores.js';
import { datastoreDefinitions } from './datastore-definitions.js';

const MAX_KEY_FETCH_MS = 15_000;

export interface Services extends AppServices {
  db: Database;
  keyring: Keyring;
  signingKeys: SigningKeyStore;
  federation: FederationClient;
  /** Media bytes, content-addressed by sha256, in the configured datastores. */
  datastores: Datastores;
  blobs: BlobReferences;
  /** Drops other instances' cached rows when this one changes them. */
  invalidations: CacheInvalidations;
}

export interface RunningService {
  url: string;
  services: Services;
  close(): Promise<void>;
}

export async function openServices(config: Config, log: Logger, db?: Database): Promise<Services> {
  const database = db ?? (await openDatabase({
    url: config.database.url === undefined ? undefined : readSecret(config.database.url, 'database.url'),
    dataDir: config.dataDir,
    poolMax: config.database.poolMax,
  }));
  const { knex } = database;
  const applied = await migrateToLatest(knex);
  if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');
  const signingKeys = new SigningKeyStore(knex, loadMasterKey(config, log));
  await importSigningKeys(config, signingKeys, log);

  const datastores = await Datastores.open(datastoreDefinitions(config.datastores));
  const blobs = new BlobReferences(knex, datastores);
  const media = new MediaStore(knex, blobs);
  const invalidations = new CacheInvalidations(knex, config.cacheInvalidationPollMs, (err) => log.warn({ err }, 'polling cache invalidations failed'));
  invalidations.on('media', (key) => media.forget(key));
  await invalidations.start();
  const federation = createFederationClient(config, signingKeys, log);
  const keyring = new Keyring({
    knex,
    federation: config.federation,
    // Key fetches go through discovery and the IP filter like every other outbound request.
    fetchServerKeys: federation.fetchServerKeysJson,
    queryNotary: federation.queryNotary,
    // A request waiting on a key fetch holds the peer's connection: keep that wait well below its timeout.
    fetchTimeoutMs: Math.min(config.federation.requestTimeoutMs, MAX_KEY_FETCH_MS),
    log,
  });
  const localMedia = new LocalMedia(media, datastores);
  return {
    config,
    log,
    db: database,
    tenants: new Tenants(config.homeservers),
    signingKeys,
    datastores,
    blobs,
    invalidations,
    media,
    keyring,
    federation,
    localMedia,
    uploads: new Uploads(media, datastores, config.media),
    thumbnails: new Thumbnails(media, localMedia, datastores, config.media.thumbnails),
    remoteMedia: new RemoteMedia({
      knex,
      media,
      blobs,
      datastores,
      federation,
      log,
      settings: { ...config.federation, maxTimeoutMs: config.media.maxTimeoutMs },
      spoolDirectory: join(config.dataDir, 'remote-spool'),
    }),
  };
}

export async function closeServices(services: Services): Promise<void> {
  await services.invalidations.close();
  await services.remoteMedia.close();
  services.federation.close();
  await services.db.close();
  services.datastores.close();
}

export async function startService(config: Config, log: Logger, db?: Database): Promise<RunningService> {
  const services = await openServices(config, log, db);
  const server: Server = createApp(services).listen(config.listen.port, config.listen.host);
  // A large upload over a slow link outlives node's default 5-minute request deadline; stalled sockets still close.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.setTimeout(Math.max(120_000, config.media.maxTimeoutMs + 30_000));
  await once(server, 'listening');
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  log.info({ url, homeservers: config.homeservers.map((hs) => hs.name), embeddedDatabase: services.db.embedded }, 'listening');
  return {
    url,
    services,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await closeServices(services);
    },
  };
}

async function importSigningKeys(config: Config, signingKeys: SigningKeyStore, log: Logger): Promise<void> {
  for (const hs of config.homeservers) {
    if (!hs.signingKeyPath) {
      log.warn({ homeserver: hs.name }, 'no signingKeyPath: remote media can only be fetched over the legacy unauthenticated endpoints');
      continue;
    }
    const outcome = await signingKeys.importKeyFile(hs.name, hs.signingKeyPath);
    const key = await signingKeys.activeKey(hs.name);
    log.info({ homeserver: hs.name, keyId: key?.keyId, outcome }, 'signing key ready');
  }
}

function loadMasterKey(config: Config, log: Logger): MasterKey {
  if (config.masterKey !== undefined) return MasterKey.load(config.masterKey);
  const file = join(config.dataDir, 'master.key');
  const { key, created } = MasterKey.loadOrCreateFile(file);
  if (created) log.warn({ file }, 'no masterKey configured: created one; back it up, signing keys cannot be decrypted without it');
  return key;
}
