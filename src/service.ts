// The composition root: builds every part once, in order, each with only what it needs, and starts the
// HTTP listener. Nothing else constructs services.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { readSecret, type Config } from './config/config.js';
import { readStaticTokens } from './config/static-tokens.js';
import { Tenants } from './config/tenants.js';
import { CacheInvalidations } from './db/cache-invalidations.js';
import { migrateToLatest, openDatabase, type Database } from './db/database.js';
import { Instances } from './db/instances.js';
import { AuthSchemes } from './federation/auth-schemes.js';
import type { FederationClient } from './federation/client.js';
import { createFederationClient } from './federation/outbound.js';
import { createApp } from './http/app.js';
import { expressMessages, type ExpressMessages } from './http/express-messages.js';
import { answerClientError } from './http/client-error.js';
import { OutageLog } from './http/outages.js';
import { RateLimits } from './http/rate-limits.js';
import type { AppServices } from './http/services.js';
import { StaticTokens } from './http/static-tokens.js';
import { importKeyFiles, readKeyFiles } from './keys/key-file-imports.js';
import type { KeyFileImport } from './keys/signing-key-store.js';
import { Keyring } from './keys/keyring.js';
import { MasterKey } from './keys/master-key.js';
import { SigningKeyStore } from './keys/signing-key-store.js';
import type { Logger } from './log.js';
import { BlobReferences } from './media/blob-references.js';
import { removeLeftoversAtStart } from './media/crash-leftovers.js';
import { LocalMedia } from './media/local-media.js';
import { MediaStore } from './media/media-store.js';
import { RemoteMedia } from './media/remote-media.js';
import { Thumbnails } from './media/thumbnails.js';
import { Quotas } from './media/quotas.js';
import { Uploads } from './media/uploads.js';
import { instrumentDatastores } from './metrics/instrumented-datastores.js';
import { SmallBlobs } from './storage/small-blobs.js';
import { startMetricsServer } from './metrics/metrics-server.js';
import { Metrics } from './metrics/metrics.js';
import { buildAdmin, type AdminJobs } from './service-admin.js';
import { Datastores } from './storage/datastores.js';
import { datastoreDefinitions } from './datastore-definitions.js';
import { collectStartupGarbage } from './startup-garbage.js';

const MAX_KEY_FETCH_MS = 15_000;
const MAX_LOGGED_NAMES = 50;

export interface Services extends AppServices {
  db: Database;
  keyring: Keyring;
  signingKeys: SigningKeyStore;
  federation: FederationClient;
  /** Which Authorization scheme each homeserver's outbound requests carry; started by startService. */
  authSchemes: AuthSchemes;
  /** Media bytes, content-addressed by sha256, in the configured datastores. */
  datastores: Datastores;
  blobs: BlobReferences;
  /** Present when config.metrics.enabled. */
  metrics?: Metrics;
  /** Background admin work: tasks and retention. */
  jobs: AdminJobs;
  /** Drops other instances' cached rows when this one changes them. */
  invalidations: CacheInvalidations;
  /** This instance's id (naming its staging files and fetch locks) and which instances are alive. */
  instances: Instances;
}

export interface RunningService {
  url: string;
  /** Where /metrics is served, when enabled. */
  metricsUrl?: string;
  services: Services;
  /** Stops the listener and closes everything; requests in flight get up to `drainMs` to finish. */
  close(drainMs?: number): Promise<void>;
}

export async function openServices(config: Config, log: Logger, db?: Database): Promise<Services> {
  // Files the config names are read before the database is opened, so that a bad one fails at once.
  const staticTokens = new StaticTokens(new Map(config.homeservers.map((hs) => [hs.name, readStaticTokens(hs)])));
  const keyFiles = readKeyFiles(config.homeservers);
  const masterKey = loadMasterKey(config, log);
  const database = db ?? (await openDatabase({
    url: config.database.url === undefined ? undefined : readSecret(config.database.url, 'database.url'),
    dataDir: config.dataDir,
    poolMax: config.database.poolMax,
  }));
  try {
    return await buildServices(config, log, database, masterKey, staticTokens, keyFiles);
  } catch (error) {
    if (!db) await database.close();
    throw error;
  }
}

async function buildServices(config: Config, log: Logger, database: Database, masterKey: MasterKey, staticTokens: StaticTokens, keyFiles: KeyFileImport[]): Promise<Services> {
  const { knex } = database;
  const applied = await migrateToLatest(knex);
  if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');
  const signingKeys = new SigningKeyStore(knex, masterKey);
  await importKeyFiles(signingKeys, config.homeservers, keyFiles, log);

  // Metrics reach each part as narrow callbacks; no part imports the registry.
  const metrics = config.metrics.enabled ? new Metrics({ knex }) : undefined;
  // Registered before anything is staged, so no other instance takes this one's staging for a dead one's.
  const instances = await Instances.register(database, (err) => log.warn({ err }, 'instance heartbeat failed'));
  const opened = await Datastores.open(datastoreDefinitions(config.datastores), { instanceId: instances.id, smallBlobs: new SmallBlobs(config.media.smallBlobs) });
  const datastores = metrics ? instrumentDatastores(opened, metrics) : opened;
  const blobs = new BlobReferences(knex, datastores);
  const media = new MediaStore(knex, blobs, config.admin.recordCacheTtlMs, {
    media: metrics?.cacheLookups('local_media_records'), thumbnails: metrics?.cacheLookups('thumbnail_records'),
  });
  const invalidations = new CacheInvalidations(knex, config.cacheInvalidationPollMs, (err) => log.warn({ err }, 'polling cache invalidations failed'));
  invalidations.on('media', (key) => media.forget(key));
  await invalidations.start();
  const { admin, jobs } = buildAdmin(config, knex, media, blobs, invalidations, log);
  // Reads each homeserver's published keys through the client it configures: bound late, used only once started.
  const authSchemes = new AuthSchemes({
    homeservers: config.homeservers.map((hs) => hs.name),
    signingKeys,
    fetchKeys: (serverName, path) => federation.fetchServerKeysJson(serverName, path),
    log,
  });
  const federation = createFederationClient(config, signingKeys, log, authSchemes);
  const limits = new RateLimits(config.homeservers, config.rateLimits, metrics?.rateLimitRefused);
  const keyring = new Keyring({
    knex,
    federation: config.federation,
    // Key fetches go through discovery and the IP filter like every other outbound request.
    fetchServerKeys: metrics ? metrics.keyFetches('direct', federation.fetchServerKeysJson) : federation.fetchServerKeysJson,
    queryNotary: metrics ? metrics.keyFetches('notary', federation.queryNotary) : federation.queryNotary,
    cacheLookups: metrics?.cacheLookups('keys'),
    // A request waiting on a key fetch holds the peer's connection: keep that wait well below its timeout.
    fetchTimeoutMs: Math.min(config.federation.requestTimeoutMs, MAX_KEY_FETCH_MS),
    log,
  });
  const localMedia = new LocalMedia(media, datastores, (serverName, mediaId) => admin.accessTimes.record(serverName, mediaId));
  const quotas = new Quotas(knex, metrics?.quotaRefused);
  return {
    config,
    log,
    db: database,
    tenants: new Tenants(config.homeservers),
    staticTokens,
    signingKeys,
    datastores,
    blobs,
    invalidations,
    instances,
    media,
    keyring,
    federation,
    authSchemes,
    localMedia,
    quotas,
    uploads: new Uploads(media, datastores, config.media, quotas, metrics?.uploadStored),
    limits,
    outages: new OutageLog(log, metrics?.dependencyUnavailable),
    metrics,
    httpObserver: metrics,
    tokenCacheLookups: metrics?.cacheLookups('tokens'),
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
      hooks: {
        admitFetch: (tenant, serverName) => limits.checkRemoteFetch(tenant, serverName),
        cacheLookup: metrics?.cacheLookups('remote_media'),
        joined: metrics?.remoteFetchJoined,
        fetchFinished: metrics?.remoteFetchFinished,
      },
      accessed: (tenant, serverName, mediaId) => admin.accessTimes.record(serverName, mediaId, tenant),
      instances,
    }),
    admin,
    jobs,
  };
}

export async function closeServices(services: Services): Promise<void> {
  services.authSchemes.stop();
  await services.jobs.close();
  await services.invalidations.close();
  await services.remoteMedia.close();
  await services.admin.accessTimes.close();
  services.federation.close();
  await services.instances.close();
  await services.db.close();
  services.datastores.close();
}

export async function startService(config: Config, log: Logger, db?: Database): Promise<RunningService> {
  // Bound first: a taken port fails in milliseconds, before the database is opened or migrated.
  let handle: RequestListener = (_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ errcode: 'M_UNKNOWN', error: 'Starting' }));
  };
  const messages = expressMessages();
  const server = await listen((req, res) => handle(req, res), config.listen, messages);
  server.on('clientError', (error: Error, socket: Socket) => answerClientError(error, socket));
  let services: Services;
  try {
    services = await openServices(config, log, db);
  } catch (error) {
    await drain(server, 0);
    throw error;
  }
  await removeLeftoversAtStart({ ...services, knex: services.db.knex });
  services.jobs.start();
  // Not awaited: a homeserver slow to publish its keys must not hold up the listener (its first request waits a little).
  void services.authSchemes.start();
  const app = createApp(services);
  messages.adopt(app);
  handle = app;
  setImmediate(() => collectStartupGarbage(config.homeservers.length));
  // A large upload over a slow link outlives node's default 5-minute request deadline; stalled sockets still close.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.setTimeout(Math.max(120_000, config.media.maxTimeoutMs + 30_000));
  const metricsServer = services.metrics
    ? await startMetricsServer(services.metrics.registry, config.metrics.host, config.metrics.port).catch(async (error: unknown) => {
        await drain(server, 0);
        await closeServices(services);
        throw error;
      })
    : undefined;
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  if (metricsServer) log.info({ url: metricsServer.url }, 'metrics listening');
  // Names up to a screenful; a provider's thousands are counted, not listed in one huge line.
  const hosted = config.homeservers.length <= MAX_LOGGED_NAMES ? config.homeservers.map((hs) => hs.name) : config.homeservers.length;
  log.info({ url, homeservers: hosted, embeddedDatabase: services.db.embedded }, 'listening');
  return {
    url,
    metricsUrl: metricsServer?.url,
    services,
    close: async (drainMs = 0) => {
      await metricsServer?.close();
      await drain(server, drainMs);
      await closeServices(services);
    },
  };
}

/** Binds the listener; a failure (port taken, address not ours) is one clear error naming the address. */
async function listen(handler: RequestListener, { host, port }: Config['listen'], messages: ExpressMessages): Promise<Server> {
  // A request without Host reaches the app, whose tenant rule answers it 404 M_NOT_FOUND like any unknown Host.
  const server = createServer({ requireHostHeader: false, ...messages.options }, handler);
  server.listen(port, host);
  try {
    await once(server, 'listening');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'EADDRINUSE' ? 'the address is already in use' : code === 'EACCES' ? 'permission denied' : code === 'EADDRNOTAVAIL' ? 'no such local address' : code;
    throw new Error(`cannot listen on ${host}:${port}: ${why} (${code}); change listen.host or listen.port`);
  }
  return server;
}

/** Stops accepting, lets requests in flight finish for up to `drainMs`, then cuts what is left. */
async function drain(server: Server, drainMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  if (drainMs > 0) {
    // Keep-alive connections go as soon as their request is answered.
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)))]);
    clearTimeout(timer);
    clearInterval(sweep);
  }
  server.closeAllConnections();
  await closed;
}

function loadMasterKey(config: Config, log: Logger): MasterKey {
  if (config.masterKey !== undefined) return MasterKey.load(config.masterKey);
  const file = join(config.dataDir, 'master.key');
  const { key, created } = MasterKey.loadOrCreateFile(file);
  if (created) log.warn({ file }, 'no masterKey configured: created one; back it up, signing keys cannot be decrypted without it');
  return key;
}
