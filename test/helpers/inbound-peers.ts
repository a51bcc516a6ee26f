// Inbound-federation test bed: the service with three homeservers, peers' key servers and a notary, Synapse-signed requests.
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import type { NotaryConfig } from '../../src/config/config.js';
import type { RunningService } from '../../src/service.js';
import { LoopbackKeyServer, QUERY, SCOPED, serverKeysResponse, V2, type ServerKeysSpec } from './key-server.js';
import type { SynapseKey } from './keys.js';
import { PythonWorker } from './python-worker.js';
import { startTestService } from './service-under-test.js';

const DAY = 24 * 3600_000;
export const MEDIA_ID = 'fedMedia123';
export const OTHER_TENANT_MEDIA_ID = 'otherTenantMedia';
export const REMOTE_MEDIA_ID = 'remoteCachedMedia';
export const IMAGE_ID = 'fedImage';
export const DOWNLOAD = `/_matrix/federation/v1/media/download/${MEDIA_ID}`;
export const UNSTABLE_DOWNLOAD = `/_matrix/federation/unstable/org.matrix.msc3916.v2/media/download/${MEDIA_ID}`;
export const CONTENT = randomBytes(10 * 1024);

let signer: PythonWorker;
export let service: RunningService;
export const keyServers = new Map<string, LoopbackKeyServer>();
export let notary: LoopbackKeyServer;
/** The service's log (level info: the access log included). */
export const logLines: string[] = [];

// Keys: python-generated, per origin.
export let k1: SynapseKey;
export let k2: SynapseKey;
export let kOld: SynapseKey;
export let kUnpublished: SynapseKey;
export let sReq: SynapseKey;
export let sEvents: SynapseKey;
export let otherKey: SynapseKey;
let notaryKey: SynapseKey;
let strangerKey: SynapseKey;

/** Every origin that gets a key server, and what it answers. */
type Served = Partial<Record<typeof V2 | typeof SCOPED, () => Promise<unknown>>>;

function keysOf(spec: Omit<ServerKeysSpec, 'validUntilTs'> & { validUntilTs?: number }) {
  return () => serverKeysResponse(signer, { validUntilTs: Date.now() + DAY, ...spec });
}

/**
 * Starts the peers' key servers (keys made and signed by Synapse's signedjson), the notary, and the service hosting
 * hs.test, other-hs.test and guarded.test (with allow/deny lists) with its media, before the calling file's tests;
 * stops them after. The exported `let` bindings are live (ESM), so test files read them as if they were their own variables.
 */
export function useInboundPeers(): void {
  beforeAll(async () => {
    signer = PythonWorker.acquire();
    [k1, k2, kOld, kUnpublished, sReq, sEvents, otherKey, notaryKey, strangerKey] = await Promise.all(
      ['k1', 'k2', 'old', 'unpub', 'sreq', 'sev', 'o1', 'n1', 'n2'].map((v) => signer.generateKey(v)),
    );
    const forged = await signer.generateKey('k1');
    const origins: Record<string, Served> = {
      'peer.test': {
        [V2]: keysOf({ serverName: 'peer.test', verifyKeys: [k1, k2], oldVerifyKeys: [kOld] }),
        [SCOPED]: keysOf({ serverName: 'peer.test', verifyKeys: [sReq, sEvents], scopes: { [sReq.keyId]: ['m.requests'], [sEvents.keyId]: ['m.events'] } }),
      },
      'other.test': { [V2]: keysOf({ serverName: 'other.test', verifyKeys: [otherKey] }) },
      'expired.test': { [V2]: keysOf({ serverName: 'expired.test', verifyKeys: [k1], validUntilTs: Date.now() - 1000 }) },
      'liar.test': { [V2]: keysOf({ serverName: 'peer.test', verifyKeys: [k1] }) },
      'forger.test': { [V2]: keysOf({ serverName: 'forger.test', verifyKeys: [k1], signWith: [forged] }) },
      'unsigned.test': { [V2]: keysOf({ serverName: 'unsigned.test', verifyKeys: [k1], signWith: [] }) },
      'burst.test': { [V2]: keysOf({ serverName: 'burst.test', verifyKeys: [k1] }) },
      'good.friends.test': { [V2]: keysOf({ serverName: 'good.friends.test', verifyKeys: [k1] }) },
      'bad.friends.test': { [V2]: keysOf({ serverName: 'bad.friends.test', verifyKeys: [k1] }) },
      'stranger.test': { [V2]: keysOf({ serverName: 'stranger.test', verifyKeys: [k1] }) },
      // Direct fetches of these fail (404); only the notary knows them.
      'vianotary.test': {},
      'viabadnotary.test': {},
      'viastranger.test': {},
    };
    const overrides: Record<string, string> = { 'down.test': 'http://127.0.0.1:1' };
    for (const [name, served] of Object.entries(origins)) {
      const server = await LoopbackKeyServer.start();
      for (const [path, make] of Object.entries(served)) server.answer(path, () => make());
      keyServers.set(name, server);
      overrides[name] = server.url;
    }

    notary = await LoopbackKeyServer.start();
    notary.answer(QUERY, async (body: unknown) => {
      const [name] = Object.keys((body as { server_keys: Record<string, unknown> }).server_keys);
      // Vouches only for the servers it is meant to; for any other it knows nothing.
      if (!name!.startsWith('via')) return { server_keys: [] };
      const entry = await keysOf({ serverName: name!, verifyKeys: [k1] })();
      if (name === 'viastranger.test') return { server_keys: [await signer.sign(entry, 'notary.test', [strangerKey])] };
      const signed = await signer.sign(entry, 'notary.test', [notaryKey]);
      if (name === 'viabadnotary.test') signed.signatures['notary.test']![notaryKey.keyId] = signed.signatures[name]![k1.keyId]!;
      return { server_keys: [signed] };
    });
    const notaryConfig: NotaryConfig = { serverName: 'notary.test', verifyKeys: { [notaryKey.keyId]: notaryKey.publicKey }, url: notary.url };

    service = await startTestService({
      logLevel: 'info',
      homeservers: [
        { name: 'hs.test', clientApi: 'http://127.0.0.1:1', hostnames: ['matrix.hs.test'] },
        { name: 'other-hs.test', clientApi: 'http://127.0.0.1:1' },
        {
          name: 'guarded.test',
          clientApi: 'http://127.0.0.1:1',
          federation: { allowOrigins: ['*.friends.test', 'peer.test'], denyOrigins: ['bad.friends.test'] },
        },
      ],
      federation: { serverOverrides: overrides, notaries: [notaryConfig], keyRefetchIntervalMs: 60_000 },
    }, { logLines });
    await insertMedia('hs.test', MEDIA_ID, false);
    await insertMedia('guarded.test', MEDIA_ID, false);
    await insertMedia('other-hs.test', OTHER_TENANT_MEDIA_ID, false);
    await insertMedia('remote.test', REMOTE_MEDIA_ID, true);
    const png = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#3366ff' } }).png().toBuffer();
    await insertMedia('hs.test', IMAGE_ID, false, png, 'image/png');
  });

  afterAll(async () => {
    await service?.close();
    await Promise.all([...keyServers.values(), notary].map((s) => s?.close()));
    await signer?.release();
  });
}

async function insertMedia(serverName: string, mediaId: string, isRemote: boolean, bytes = CONTENT, contentType = 'text/plain'): Promise<void> {
  const { media, datastores } = service.services;
  const blob = await datastores.forKind('local_media').writeStream(Readable.from([bytes]), { maxBytes: 1 << 20 });
  const inserted = await media.insertMedia({ serverName, mediaId, isRemote, userId: isRemote ? null : `@alice:${serverName}`, contentType, uploadName: 'notes.txt' }, blob);
  expect(inserted).toBe(true);
}

export interface SignOptions {
  method?: string;
  uri?: string;
  origin?: string;
  destination?: string;
  /** An old sender's header without the destination param. */
  legacyHeader?: boolean;
  keys?: SynapseKey[];
  scheme?: string;
  content?: unknown;
}

/** The Authorization values Synapse would send. */
export function sign(options: SignOptions = {}): Promise<string[]> {
  return signer.authHeaders({
    method: options.method ?? 'GET',
    uri: options.uri ?? DOWNLOAD,
    origin: options.origin ?? 'peer.test',
    destination: options.destination ?? 'hs.test',
    content: options.content,
    legacyHeader: options.legacyHeader,
  }, options.keys ?? [k1], options.scheme ?? 'X-Matrix');
}

export interface Sent {
  path?: string;
  method?: string;
  host?: string;
  authorization?: string[];
}

export interface Received {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** node:http, so the request target goes out byte for byte and several Authorization lines stay separate. */
export function send(sent: Sent): Promise<Received> {
  const url = new URL(service.url);
  const headers: Record<string, string | string[]> = { host: sent.host ?? 'hs.test' };
  if (sent.authorization && sent.authorization.length > 0) headers.authorization = sent.authorization;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: sent.path ?? DOWNLOAD, method: sent.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export function errcodeOf(received: Received): string | undefined {
  try {
    return (JSON.parse(received.body.toString('utf8')) as { errcode?: string }).errcode;
  } catch {
    return undefined;
  }
}
