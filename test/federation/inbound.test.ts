// Inbound federation media end to end: the real service on loopback, peers whose requests are signed by
// Synapse's python signedjson exactly as Synapse builds its X-Matrix headers, and whose keys are served
// by loopback key servers (and a notary), also signed by python.
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import type { NotaryConfig } from '../../src/config/config.js';
import { readMultipartMixed } from '../../src/matrix/multipart-reader.js';
import type { RunningService } from '../../src/service.js';
import { LoopbackKeyServer, serverKeysResponse, type ServerKeysSpec } from '../helpers/key-server.js';
import type { SynapseKey } from '../helpers/keys.js';
import { PythonWorker } from '../helpers/python-worker.js';
import { startTestService } from '../helpers/service-under-test.js';

const V2 = '/_matrix/key/v2/server';
const SCOPED = '/_matrix/key/unstable/org.matrix.msc4100/server';
const QUERY = '/_matrix/key/v2/query';
const DAY = 24 * 3600_000;
const MEDIA_ID = 'fedMedia123';
const OTHER_TENANT_MEDIA_ID = 'otherTenantMedia';
const REMOTE_MEDIA_ID = 'remoteCachedMedia';
const IMAGE_ID = 'fedImage';
const DOWNLOAD = `/_matrix/federation/v1/media/download/${MEDIA_ID}`;
const UNSTABLE_DOWNLOAD = `/_matrix/federation/unstable/org.matrix.msc3916.v2/media/download/${MEDIA_ID}`;
const CONTENT = randomBytes(10 * 1024);

let signer: PythonWorker;
let service: RunningService;
const keyServers = new Map<string, LoopbackKeyServer>();
let notary: LoopbackKeyServer;

// Keys: python-generated, per origin.
let k1: SynapseKey;
let k2: SynapseKey;
let kOld: SynapseKey;
let kUnpublished: SynapseKey;
let sReq: SynapseKey;
let sEvents: SynapseKey;
let otherKey: SynapseKey;
let notaryKey: SynapseKey;
let strangerKey: SynapseKey;

/** Every origin that gets a key server, and what it answers. */
type Served = Partial<Record<typeof V2 | typeof SCOPED, () => Promise<unknown>>>;

function keysOf(spec: Omit<ServerKeysSpec, 'validUntilTs'> & { validUntilTs?: number }) {
  return () => serverKeysResponse(signer, { validUntilTs: Date.now() + DAY, ...spec });
}

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
  });
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

async function insertMedia(serverName: string, mediaId: string, isRemote: boolean, bytes = CONTENT, contentType = 'text/plain'): Promise<void> {
  const { media, datastores } = service.services;
  const blob = await datastores.forKind('local_media').writeStream(Readable.from([bytes]), { maxBytes: 1 << 20 });
  const inserted = await media.insertMedia({ serverName, mediaId, isRemote, userId: isRemote ? null : `@alice:${serverName}`, contentType, uploadName: 'notes.txt' }, blob);
  expect(inserted).toBe(true);
}

interface SignOptions {
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
function sign(options: SignOptions = {}): Promise<string[]> {
  return signer.authHeaders({
    method: options.method ?? 'GET',
    uri: options.uri ?? DOWNLOAD,
    origin: options.origin ?? 'peer.test',
    destination: options.destination ?? 'hs.test',
    content: options.content,
    legacyHeader: options.legacyHeader,
  }, options.keys ?? [k1], options.scheme ?? 'X-Matrix');
}

interface Sent {
  path?: string;
  method?: string;
  host?: string;
  authorization?: string[];
}

interface Received {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** node:http, so the request target goes out byte for byte and several Authorization lines stay separate. */
function send(sent: Sent): Promise<Received> {
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

function errcodeOf(received: Received): string | undefined {
  try {
    return (JSON.parse(received.body.toString('utf8')) as { errcode?: string }).errcode;
  } catch {
    return undefined;
  }
}

async function parseMedia(received: Received) {
  const contentType = received.headers['content-type']!;
  const part = await readMultipartMixed(Readable.from([received.body]), contentType);
  const chunks: Buffer[] = [];
  for await (const chunk of part.body) chunks.push(chunk as Buffer);
  return { ...part, bytes: Buffer.concat(chunks) };
}

function tamper(headers: string[]): string[] {
  return headers.map((h) => h.replace(/sig="(.)/, (_m, c: string) => `sig="${c === 'A' ? 'B' : 'A'}`));
}

describe('serving local media to authenticated servers', () => {
  test('a Synapse-signed X-Matrix download gets multipart/mixed: {} then the bytes, streamed with type and disposition', async () => {
    const received = await send({ authorization: await sign() });
    expect(received.status).toBe(200);
    const contentType = received.headers['content-type']!;
    const boundary = /^multipart\/mixed; boundary=([^";]+)$/.exec(contentType)?.[1];
    expect(boundary).toBeDefined();
    // Leading CRLF, then the JSON part exactly as the spec describes it.
    expect(received.body.subarray(0, 2).toString()).toBe('\r\n');
    expect(received.body.toString('latin1')).toMatch(new RegExp(`^\\r\\n--${boundary}\\r\\nContent-Type: application/json\\r\\n\\r\\n\\{\\}\\r\\n--${boundary}\\r\\n`));
    const media = await parseMedia(received);
    expect(media.metadata).toEqual({});
    expect(media.headers['content-type']).toBe('text/plain');
    expect(media.headers['content-disposition']).toMatch(/^inline; filename="notes\.txt"/);
    expect(media.location).toBeUndefined();
    expect(media.bytes.equals(CONTENT)).toBe(true);
  });

  test('the unstable MSC3916 path serves the same', async () => {
    const received = await send({ path: UNSTABLE_DOWNLOAD, authorization: await sign({ uri: UNSTABLE_DOWNLOAD }) });
    expect(received.status).toBe(200);
    expect((await parseMedia(received)).bytes.equals(CONTENT)).toBe(true);
  });

  test('the signed uri includes the query string, which reaches the handler (timeout_ms)', async () => {
    const uri = `${DOWNLOAD}?timeout_ms=5000`;
    expect((await send({ path: uri, authorization: await sign({ uri }) })).status).toBe(200);
  });

  test.each([
    ['/_matrix/federation/v1/media/thumbnail'],
    ['/_matrix/federation/unstable/org.matrix.msc3916.v2/media/thumbnail'],
  ])('%s serves a thumbnail of a configured size in the same multipart form', async (prefix) => {
    const uri = `${prefix}/${IMAGE_ID}?width=32&height=32&method=crop`;
    const received = await send({ path: uri, authorization: await sign({ uri }) });
    expect(received.status).toBe(200);
    const media = await parseMedia(received);
    expect(media.metadata).toEqual({});
    expect(media.headers['content-type']).toMatch(/^image\/(png|jpeg|webp)$/);
    const metadata = await sharp(media.bytes).metadata();
    // 32x32 crop is one of the spec's recommended sizes, which are the configured defaults.
    expect([metadata.width, metadata.height]).toEqual([32, 32]);
  });

  test('a request signed by two keys (one header each, as Synapse sends) passes when both verify', async () => {
    const headers = await sign({ keys: [k1, k2] });
    expect(headers).toHaveLength(2);
    expect((await send({ authorization: headers })).status).toBe(200);
  });

  test('the Host may be an extra hostname of the homeserver, with a port', async () => {
    expect((await send({ host: 'matrix.hs.test:8448', authorization: await sign() })).status).toBe(200);
    expect((await send({ host: 'hs.test:443', authorization: await sign() })).status).toBe(200);
  });

  test('an old sender without destination is served the media of the homeserver its Host names', async () => {
    const headers = await sign({ legacyHeader: true });
    expect(headers[0]).not.toContain('destination');
    expect((await send({ authorization: headers })).status).toBe(200);
  });

  test('X-MSC4100-Scoped with an m.requests key, alone or beside a valid X-Matrix', async () => {
    const scoped = await sign({ keys: [sReq], scheme: 'X-MSC4100-Scoped' });
    expect(scoped[0]).toMatch(/^X-MSC4100-Scoped origin="peer\.test",key="ed25519:sreq",sig="/);
    expect((await send({ authorization: scoped })).status).toBe(200);
    expect((await send({ authorization: [...(await sign()), ...scoped] })).status).toBe(200);
  });

  test("MSC4100's stable scheme X-Matrix-Scoped is verified like the unstable one", async () => {
    const stable = (await sign({ keys: [sReq], scheme: 'X-MSC4100-Scoped' })).map((h) => h.replace(/^X-MSC4100-Scoped /, 'X-Matrix-Scoped '));
    expect((await send({ authorization: stable })).status).toBe(200);
    const unscoped = (await sign({ keys: [k1], scheme: 'X-MSC4100-Scoped' })).map((h) => h.replace(/^X-MSC4100-Scoped /, 'X-Matrix-Scoped '));
    const refused = await send({ authorization: unscoped });
    expect([refused.status, errcodeOf(refused)]).toEqual([401, 'M_UNAUTHORIZED']);
  });

  test('the media of each homeserver goes to requests addressed to it', async () => {
    const path = `/_matrix/federation/v1/media/download/${OTHER_TENANT_MEDIA_ID}`;
    const received = await send({ path, host: 'other-hs.test', authorization: await sign({ uri: path, destination: 'other-hs.test' }) });
    expect(received.status).toBe(200);
    expect((await parseMedia(received)).bytes.equals(CONTENT)).toBe(true);
  });

  test('keys only a notary can give are fetched from it and accepted', async () => {
    const received = await send({ authorization: await sign({ origin: 'vianotary.test' }) });
    expect(received.status).toBe(200);
    expect(notary.requests.some((r) => JSON.stringify(r.body).includes('vianotary.test'))).toBe(true);
  });

  test('an allowed origin is served by a homeserver with allow/deny lists', async () => {
    const received = await send({ host: 'guarded.test', authorization: await sign({ origin: 'good.friends.test', destination: 'guarded.test' }) });
    expect(received.status).toBe(200);
  });

  test('a datastore that redirects makes the second part a Location with an empty body', async () => {
    const storage = service.services.datastores.get('default') as { redirectUrl?: (sha256: string) => Promise<string | undefined> };
    const before = storage.redirectUrl;
    storage.redirectUrl = async (sha256) => `https://cdn.example/${sha256}?sig=abc`;
    try {
      const received = await send({ authorization: await sign() });
      expect(received.status).toBe(200);
      const media = await parseMedia(received);
      expect(media.location).toMatch(/^https:\/\/cdn\.example\/[0-9a-f]{64}\?sig=abc$/);
      expect(media.bytes.length).toBe(0);
    } finally {
      storage.redirectUrl = before;
    }
  });
});

describe('key fetching under load', () => {
  test('concurrent requests from a new origin share one key fetch; unknown keys do not refetch within the interval', async () => {
    const keyServer = keyServers.get('burst.test')!;
    keyServer.delayMs = 300;
    const headers = await sign({ origin: 'burst.test' });
    const results = await Promise.all(Array.from({ length: 20 }, () => send({ authorization: headers })));
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(keyServer.count(V2)).toBe(1);

    const unknown = await sign({ origin: 'burst.test', keys: [kUnpublished] });
    for (let i = 0; i < 5; i++) {
      const received = await send({ authorization: unknown });
      expect([received.status, errcodeOf(received)]).toEqual([401, 'M_UNAUTHORIZED']);
    }
    expect(keyServer.count(V2)).toBe(1);
  });

  test('denied origins are refused before any key fetch', async () => {
    await send({ host: 'guarded.test', authorization: await sign({ origin: 'bad.friends.test', destination: 'guarded.test' }) });
    expect(keyServers.get('bad.friends.test')!.count(V2)).toBe(0);
  });
});

type Variant = [title: string, make: () => Promise<Sent>, status: number, errcode: string];

const header = (params: string) => async (): Promise<Sent> => ({ authorization: [`X-Matrix ${params}`] });
const validSig = async () => /sig="([^"]+)"/.exec((await sign())[0]!)![1]!;
const withValid = (make: (sig: string) => string) => async (): Promise<Sent> => ({ authorization: [make(await validSig())] });

const hostile: Variant[] = [
  // Signatures that must not verify.
  ['a tampered signature', async () => ({ authorization: tamper(await sign()) }), 401, 'M_UNAUTHORIZED'],
  ['a signature by another key under the key id', async () => ({ authorization: await sign({ keys: [{ ...k2, keyId: k1.keyId, version: k1.version }] }) }), 401, 'M_UNAUTHORIZED'],
  ['a signature by another server\'s key claiming the origin', async () => ({ authorization: await sign({ keys: [{ ...otherKey, keyId: k1.keyId, version: k1.version }] }) }), 401, 'M_UNAUTHORIZED'],
  ['two keys, the second signature tampered', async () => {
    const [a, b] = await sign({ keys: [k1, k2] });
    return { authorization: [a!, ...tamper([b!])] };
  }, 401, 'M_UNAUTHORIZED'],
  ['a valid signature beside one by an unknown algorithm', async () => ({ authorization: [...(await sign()), 'X-Matrix origin="peer.test",key="curve9:x",sig="AAAA",destination="hs.test"'] }), 401, 'M_UNAUTHORIZED'],
  ['replayed with the destination rewritten to another of our homeservers', async () => ({
    host: 'other-hs.test', authorization: (await sign()).map((h) => h.replace('destination="hs.test"', 'destination="other-hs.test"')),
  }), 401, 'M_UNAUTHORIZED'],
  ['replayed to another homeserver\'s Host', async () => ({ host: 'other-hs.test', authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['replayed on another media id', async () => ({ path: `/_matrix/federation/v1/media/download/${OTHER_TENANT_MEDIA_ID}`, authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['replayed on the thumbnail endpoint', async () => ({ path: `/_matrix/federation/v1/media/thumbnail/${MEDIA_ID}?width=32&height=32`, authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['replayed on the unstable path', async () => ({ path: UNSTABLE_DOWNLOAD, authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['replayed with another query', async () => ({ path: `${DOWNLOAD}?timeout_ms=1`, authorization: await sign({ uri: `${DOWNLOAD}?timeout_ms=5000` }) }), 401, 'M_UNAUTHORIZED'],
  ['replayed with a query added', async () => ({ path: `${DOWNLOAD}?timeout_ms=1`, authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['replayed with the query reordered', async () => ({ path: `${DOWNLOAD}?b=2&a=1`, authorization: await sign({ uri: `${DOWNLOAD}?a=1&b=2` }) }), 401, 'M_UNAUTHORIZED'],
  ['replayed with another method (signed POST)', async () => ({ authorization: await sign({ method: 'POST' }) }), 401, 'M_UNAUTHORIZED'],
  ['signed for HEAD, sent as GET', async () => ({ authorization: await sign({ method: 'HEAD' }) }), 401, 'M_UNAUTHORIZED'],
  ['the same path percent-encoded differently (the raw uri is signed)', async () => ({ path: DOWNLOAD.replace(/3$/, '%33'), authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['a signed uri with scheme and host', async () => ({ authorization: await sign({ uri: `https://hs.test${DOWNLOAD}` }) }), 401, 'M_UNAUTHORIZED'],
  ['signed with a body the GET does not have', async () => ({ authorization: await sign({ content: { a: 1 } }) }), 401, 'M_UNAUTHORIZED'],
  ['signed by peer.test but claiming origin other.test', async () => ({ authorization: (await sign()).map((h) => h.replace('origin="peer.test"', 'origin="other.test"')) }), 401, 'M_UNAUTHORIZED'],
  // Keys that must not be usable.
  ['a key id the origin does not publish', async () => ({ authorization: await sign({ keys: [kUnpublished] }) }), 401, 'M_UNAUTHORIZED'],
  ['a key whose valid_until_ts has passed', async () => ({ authorization: await sign({ origin: 'expired.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a key only in old_verify_keys', async () => ({ authorization: await sign({ keys: [kOld] }) }), 401, 'M_UNAUTHORIZED'],
  ['X-MSC4100-Scoped by a key scoped only for m.events', async () => ({ authorization: await sign({ keys: [sEvents], scheme: 'X-MSC4100-Scoped' }) }), 401, 'M_UNAUTHORIZED'],
  ['X-MSC4100-Scoped by a v2 key without scope', async () => ({ authorization: await sign({ keys: [k1], scheme: 'X-MSC4100-Scoped' }) }), 401, 'M_UNAUTHORIZED'],
  ['X-Matrix by a key published only at the scoped endpoint', async () => ({ authorization: await sign({ keys: [sReq] }) }), 401, 'M_UNAUTHORIZED'],
  ['both schemes, the X-MSC4100-Scoped one tampered', async () => ({ authorization: [...(await sign()), ...tamper(await sign({ keys: [sReq], scheme: 'X-MSC4100-Scoped' }))] }), 401, 'M_UNAUTHORIZED'],
  ['both schemes, the X-Matrix one tampered', async () => ({ authorization: [...tamper(await sign()), ...(await sign({ keys: [sReq], scheme: 'X-MSC4100-Scoped' }))] }), 401, 'M_UNAUTHORIZED'],
  ['both schemes, the scoped one by an unscoped key', async () => ({ authorization: [...(await sign()), ...(await sign({ keys: [k2], scheme: 'X-MSC4100-Scoped' }))] }), 401, 'M_UNAUTHORIZED'],
  ['a key server answering with another server_name', async () => ({ authorization: await sign({ origin: 'liar.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a key server answering with a forged self-signature', async () => ({ authorization: await sign({ origin: 'forger.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a key server answering without self-signature', async () => ({ authorization: await sign({ origin: 'unsigned.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['an origin whose key server is unreachable', async () => ({ authorization: await sign({ origin: 'down.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['keys from a notary whose signature does not verify', async () => ({ authorization: await sign({ origin: 'viabadnotary.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['keys from a notary signed with a key not configured', async () => ({ authorization: await sign({ origin: 'viastranger.test' }) }), 401, 'M_UNAUTHORIZED'],
  // Destination and Host.
  ['a destination that is not served here', async () => ({ authorization: await sign({ destination: 'elsewhere.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a destination differing only in case', async () => ({ authorization: await sign({ destination: 'HS.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a destination naming an extra hostname, not the server name', async () => ({ authorization: await sign({ destination: 'matrix.hs.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a Host that no homeserver has', async () => ({ host: 'unknown.test', authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['no destination and a Host that no homeserver has', async () => ({ host: 'unknown.test', authorization: await sign({ legacyHeader: true }) }), 401, 'M_UNAUTHORIZED'],
  ['no destination, signed for one homeserver but sent to another\'s Host', async () => ({ host: 'other-hs.test', authorization: await sign({ legacyHeader: true }) }), 401, 'M_UNAUTHORIZED'],
  // Missing.
  ['no Authorization header', async () => ({}), 401, 'M_UNAUTHORIZED'],
  ['only a Bearer token', async () => ({ authorization: ['Bearer syt_abc'] }), 401, 'M_UNAUTHORIZED'],
  ['only an unknown scheme with X-Matrix params', async () => ({ authorization: (await sign()).map((h) => h.replace('X-Matrix', 'X-Matrix-Scoped')) }), 401, 'M_UNAUTHORIZED'],
  // Malformed.
  ['the scheme alone', header(''), 400, 'M_UNAUTHORIZED'],
  ['no origin', withValid((sig) => `X-Matrix key="ed25519:k1",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['no key', withValid((sig) => `X-Matrix origin="peer.test",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['no sig', header('origin="peer.test",key="ed25519:k1",destination="hs.test"'), 400, 'M_UNAUTHORIZED'],
  ['an origin that is not a server name', withValid((sig) => `X-Matrix origin="peer_test!",key="ed25519:k1",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['an origin with a path', withValid((sig) => `X-Matrix origin="peer.test/x",key="ed25519:k1",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['an empty origin', withValid((sig) => `X-Matrix origin="",key="ed25519:k1",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['a destination that is not a server name', withValid((sig) => `X-Matrix origin="peer.test",key="ed25519:k1",sig="${sig}",destination="hs test"`), 400, 'M_UNAUTHORIZED'],
  ['a duplicate origin param', withValid((sig) => `X-Matrix origin="peer.test",origin="other.test",key="ed25519:k1",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['a duplicate sig param', withValid((sig) => `X-Matrix origin="peer.test",key="ed25519:k1",sig="${sig}",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['a duplicate key param', withValid((sig) => `X-Matrix origin="peer.test",key="ed25519:k1",key="ed25519:k2",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['an unterminated quote', withValid((sig) => `X-Matrix origin="peer.test,key="ed25519:k1",sig="${sig}`), 400, 'M_UNAUTHORIZED'],
  ['params without commas', withValid((sig) => `X-Matrix origin="peer.test" key="ed25519:k1" sig="${sig}"`), 400, 'M_UNAUTHORIZED'],
  ['a param without "="', withValid((sig) => `X-Matrix origin,key="ed25519:k1",sig="${sig}"`), 400, 'M_UNAUTHORIZED'],
  ['a param without value', withValid((sig) => `X-Matrix origin=,key="ed25519:k1",sig="${sig}"`), 400, 'M_UNAUTHORIZED'],
  ['a comma right after the scheme name', withValid((sig) => `X-Matrix,origin="peer.test",key="ed25519:k1",sig="${sig}"`), 400, 'M_UNAUTHORIZED'],
  ['a key that is not algorithm:version', withValid((sig) => `X-Matrix origin="peer.test",key="ed25519",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['a sig that is not Base64', header('origin="peer.test",key="ed25519:k1",sig="!!notbase64!!",destination="hs.test"'), 400, 'M_UNAUTHORIZED'],
  ['a non-ASCII byte in the origin', withValid((sig) => `X-Matrix origin="peer\u00e9.test",key="ed25519:k1",sig="${sig}"`), 400, 'M_UNAUTHORIZED'],
  ['two X-Matrix headers naming different origins', async () => ({ authorization: [...(await sign()), ...(await sign({ origin: 'other.test', keys: [otherKey] }))] }), 400, 'M_UNAUTHORIZED'],
  ['two X-Matrix headers naming different destinations', async () => ({ authorization: [...(await sign()), ...(await sign({ destination: 'other-hs.test', keys: [k2] }))] }), 400, 'M_UNAUTHORIZED'],
  ['two different sigs for one key', async () => ({ authorization: [...(await sign()), ...tamper(await sign())] }), 400, 'M_UNAUTHORIZED'],
  ['X-Matrix and X-MSC4100-Scoped naming different origins', async () => ({
    authorization: [...(await sign()), ...(await sign({ origin: 'other.test', keys: [otherKey], scheme: 'X-MSC4100-Scoped' }))],
  }), 400, 'M_UNAUTHORIZED'],
  // Allow and deny lists of guarded.test.
  ['a denied origin, even though the allow list matches it', async () => ({ host: 'guarded.test', authorization: await sign({ origin: 'bad.friends.test', destination: 'guarded.test' }) }), 403, 'M_FORBIDDEN'],
  ['a denied origin on another port', async () => ({ host: 'guarded.test', authorization: await sign({ origin: 'bad.friends.test:8448', destination: 'guarded.test' }) }), 403, 'M_FORBIDDEN'],
  ['an origin not in the allow list', async () => ({ host: 'guarded.test', authorization: await sign({ origin: 'stranger.test', destination: 'guarded.test' }) }), 403, 'M_FORBIDDEN'],
  ['an origin only resembling an allowed one', async () => ({ host: 'guarded.test', authorization: await sign({ origin: 'friends.test.evil', destination: 'guarded.test' }) }), 403, 'M_FORBIDDEN'],
  // Authenticated, but nothing to serve.
  ['media that does not exist', async () => {
    const path = '/_matrix/federation/v1/media/download/doesNotExist';
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_NOT_FOUND'],
  ['remote media cached here (never served over federation)', async () => {
    const path = `/_matrix/federation/v1/media/download/${REMOTE_MEDIA_ID}`;
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_NOT_FOUND'],
  ['media of another homeserver served here', async () => {
    const path = `/_matrix/federation/v1/media/download/${OTHER_TENANT_MEDIA_ID}`;
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_NOT_FOUND'],
  ['a media id off the grammar', async () => {
    const path = '/_matrix/federation/v1/media/download/bad$id';
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_NOT_FOUND'],
  ['a media id encoding a path traversal', async () => {
    const path = '/_matrix/federation/v1/media/download/..%2F..%2Fetc%2Fpasswd';
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_NOT_FOUND'],
  ['a timeout_ms that is not a number', async () => {
    const path = `${DOWNLOAD}?timeout_ms=soon`;
    return { path, authorization: await sign({ uri: path }) };
  }, 400, 'M_INVALID_PARAM'],
  ['a thumbnail without width', async () => {
    const path = `/_matrix/federation/v1/media/thumbnail/${MEDIA_ID}?height=32`;
    return { path, authorization: await sign({ uri: path }) };
  }, 400, 'M_MISSING_PARAM'],
  // Not an endpoint, or not this method.
  ['an unknown federation media endpoint', async () => {
    const path = `/_matrix/federation/v1/media/upload/${MEDIA_ID}`;
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_UNRECOGNIZED'],
  ['the old MSC3916 form with a server name', async () => {
    const path = `/_matrix/federation/v1/media/download/hs.test/${MEDIA_ID}`;
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_UNRECOGNIZED'],
  ['POST to download', async () => ({ method: 'POST', authorization: await sign({ method: 'POST' }) }), 405, 'M_UNRECOGNIZED'],
  ['DELETE to thumbnail', async () => ({ method: 'DELETE', path: `/_matrix/federation/v1/media/thumbnail/${MEDIA_ID}` }), 405, 'M_UNRECOGNIZED'],
];

describe(`${hostile.length} hostile or wrong requests are each refused with the right status and errcode`, () => {
  test('there are at least 50 of them', () => {
    expect(hostile.length).toBeGreaterThanOrEqual(50);
  });

  test.each(hostile)('%s', async (_title, make, status, errcode) => {
    const received = await send(await make());
    expect([received.status, errcodeOf(received)]).toEqual([status, errcode]);
    // HTTP requires a 405 to say what is allowed.
    expect(received.headers.allow).toBe(status === 405 ? 'GET, HEAD' : undefined);
  });
});
