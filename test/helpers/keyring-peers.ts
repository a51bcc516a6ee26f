// Keyring test bed: a test database, key responses signed by Synapse's signedjson, and a loopback key server per peer.
import type { NotaryConfig } from '../../src/config/config.js';
import type { Database } from '../../src/db/database.js';
import { buildConfig } from '../../src/config/config.js';
import { createFederationClient } from '../../src/federation/outbound.js';
import { createLogger, type Logger } from '../../src/log.js';
import { Keyring } from '../../src/keys/keyring.js';
import type { CacheLookups } from '../../src/lru-cache.js';
import { openTestDatabase } from './database.js';
import { LoopbackKeyServer, serverKeysResponse, type ServerKeysSpec } from './key-server.js';
import type { SynapseKey } from './keys.js';
import { PythonWorker } from './python-worker.js';

export const DAY = 24 * 3600_000;
export const REFETCH_MS = 60_000;

let db: Database;
export let signer: PythonWorker;
/** Closed after the file's tests: add any other key server a test starts. */
export const servers: LoopbackKeyServer[] = [];
const clients: Array<{ close(): void }> = [];
const overrides: Record<string, string> = {};
let clock: () => number = Date.now;
let serial = 0;

/**
 * Opens the database and the Python worker before the calling file's tests; keyrings see the time `now`. The
 * exported `let` bindings are live (ESM), so test files read them as if they were their own variables.
 */
export function useKeyringPeers(now: () => number): void {
  clock = now;
  beforeAll(async () => {
    db = await openTestDatabase();
    signer = PythonWorker.acquire();
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
    for (const client of clients) client.close();
    await signer.release();
    await db.close();
  });
}

/** A fresh server name with its own loopback key server. */
export async function peer(): Promise<{ name: string; server: LoopbackKeyServer }> {
  const name = `origin${++serial}.test`;
  const server = await LoopbackKeyServer.start();
  servers.push(server);
  overrides[name] = server.url;
  return { name, server };
}

export function keyring(options: { notaries?: NotaryConfig[]; notaryFirst?: boolean; fetchTimeoutMs?: number; log?: Logger; cacheLookups?: CacheLookups } = {}): Keyring {
  // The service's own outbound client; overrides are read per request, so peers added later are reached.
  const config = buildConfig({ federation: { serverOverrides: overrides, requestTimeoutMs: 5_000 } });
  const federation = createFederationClient(config, { activeKey: async () => undefined }, createLogger('silent'));
  clients.push(federation);
  return new Keyring({
    knex: db.knex,
    federation: { notaries: options.notaries ?? [], notaryFirst: options.notaryFirst ?? false, keyRefetchIntervalMs: REFETCH_MS },
    fetchServerKeys: federation.fetchServerKeysJson,
    queryNotary: federation.queryNotary,
    fetchTimeoutMs: options.fetchTimeoutMs ?? 5_000,
    now: clock,
    log: options.log,
    cacheLookups: options.cacheLookups,
  });
}

export function keys(...versions: string[]): Promise<SynapseKey[]> {
  return Promise.all(versions.map((v) => signer.generateKey(v)));
}

export function bytes(key: SynapseKey): Uint8Array {
  return new Uint8Array(Buffer.from(key.publicKey, 'base64'));
}

export function response(spec: Omit<ServerKeysSpec, 'validUntilTs'> & { validUntilTs?: number }) {
  return serverKeysResponse(signer, { validUntilTs: clock() + DAY, ...spec });
}

export async function storedRows(serverName: string) {
  return db.knex('remote_server_keys').where({ server_name: serverName }).orderBy('key_id');
}

/** Rewrites the stored rows of a server, as another instance (or a tamperer) would. */
export async function updateStoredRows(serverName: string, changes: Record<string, unknown>): Promise<void> {
  await db.knex('remote_server_keys').where({ server_name: serverName }).update(changes);
}
