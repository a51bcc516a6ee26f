// One rule decides the tenant of every request on every route family: Host, or X-Forwarded-Host only from
// a trusted proxy. Unknown, empty, doubled or missing Hosts get 404 M_NOT_FOUND; the path never decides.
import sharp from 'sharp';
import type { RunningService } from '../../src/service.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { requestBytes, sendRaw, type SocketResponse } from '../helpers/raw-socket.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const SECRET_ENV = 'TENANT_RULE_ADMIN_SECRET';
const SECRET = 'tenant-rule-shared-secret';
type Header = [string, string];

/** The one peer the service trusts as a proxy; requests from 127.0.0.1 come from an untrusted one. */
const PROXY = '127.0.0.2';

let hsA: StandInHomeserver;
let hsB: StandInHomeserver;
let dns: DnsServer;
let service: RunningService;
let mediaId: string;

async function start(): Promise<void> {
  service = await startTestService({
    trustProxy: PROXY,
    sharedSecretAuth: { token: { env: SECRET_ENV } },
    homeservers: [{ name: 'a.example', clientApi: hsA.url }, { name: 'b.example', clientApi: hsB.url }],
    media: { legacyFreezeAt: null },
    // Names resolve on a loopback DNS server (all NXDOMAIN): start-up discovery never waits on the network.
    federation: { dnsServers: [dns.address] },
  });
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#3a6' } }).png().toBuffer();
  const res = await send(false, 'POST', '/_matrix/media/v3/upload', [['Host', 'a.example'], ...alice(), ['Content-Type', 'image/png']], png);
  expect(res.status).toBe(200);
  mediaId = String(res.json()!.content_uri).split('/').pop()!;
}

beforeAll(async () => {
  process.env[SECRET_ENV] = SECRET;
  hsA = await startStandInHomeserver({ 'tok-alice': { userId: '@alice:a.example' } });
  hsB = await startStandInHomeserver({ 'tok-bob': { userId: '@bob:b.example' } });
  dns = await startDnsServer();
  await start();
}, 240_000);
afterAll(async () => {
  await service.close();
  await hsA.close();
  await hsB.close();
  await dns.close();
});

const alice = (): Header[] => [['Authorization', 'Bearer tok-alice']];
/** A request from the trusted proxy (`viaProxy`) or from an untrusted peer. */
function send(viaProxy: boolean, method: string, path: string, headers: Header[], body?: Buffer | string, version?: string): Promise<SocketResponse> {
  const length: Header[] = body === undefined ? [] : [['Content-Length', String(Buffer.byteLength(body))]];
  const bytes = requestBytes({ method, path, headers: [...headers, ...length], body, version });
  return sendRaw(Number(new URL(service.url).port), bytes, 10_000, viaProxy ? PROXY : '127.0.0.1');
}

interface Family {
  name: string;
  method: string;
  path: (mediaId: string) => string;
  headers: Header[];
  body?: string;
  /** The status a request that resolved to a.example gets. */
  served: number;
}

const FAMILIES: Family[] = [
  { name: 'client v1 download', method: 'GET', path: (id) => `/_matrix/client/v1/media/download/a.example/${id}`, headers: alice(), served: 200 },
  { name: 'client v1 thumbnail', method: 'GET', path: (id) => `/_matrix/client/v1/media/thumbnail/a.example/${id}?width=32&height=32`, headers: alice(), served: 200 },
  { name: 'client v1 config', method: 'GET', path: () => '/_matrix/client/v1/media/config', headers: alice(), served: 200 },
  { name: 'legacy v3 download', method: 'GET', path: (id) => `/_matrix/media/v3/download/a.example/${id}`, headers: [], served: 200 },
  { name: 'legacy r0 thumbnail', method: 'GET', path: (id) => `/_matrix/media/r0/thumbnail/a.example/${id}?width=32&height=32`, headers: [], served: 200 },
  { name: 'legacy r0 config', method: 'GET', path: () => '/_matrix/media/r0/config', headers: alice(), served: 200 },
  { name: 'upload', method: 'POST', path: () => '/_matrix/media/v3/upload', headers: [...alice(), ['Content-Type', 'text/plain']], body: 'hello', served: 200 },
  { name: 'async create', method: 'POST', path: () => '/_matrix/media/v1/create', headers: alice(), served: 200 },
  // Without a signature a federation request that resolved to a tenant is refused by authentication.
  { name: 'federation download', method: 'GET', path: (id) => `/_matrix/federation/v1/media/download/${id}`, headers: [], served: 401 },
  { name: 'federation thumbnail', method: 'GET', path: (id) => `/_matrix/federation/v1/media/thumbnail/${id}?width=32&height=32`, headers: [], served: 401 },
  { name: 'admin', method: 'GET', path: () => '/_matrix/media/unstable/admin/usage/a.example', headers: [['Authorization', `Bearer ${SECRET}`]], served: 200 },
];

/** Host header variants that address no tenant; every row has all three fields (jest would take a missing one for `done`). */
const NO_TENANT: [string, Header[], string][] = [
  ['Host: evil.com', [['Host', 'evil.com']], 'HTTP/1.1'],
  ['an empty Host', [['Host', '']], 'HTTP/1.1'],
  ['a doubled Host (even a hosted one twice)', [['Host', 'a.example'], ['Host', 'a.example']], 'HTTP/1.1'],
  ['two different Hosts, a hosted one first', [['Host', 'a.example'], ['Host', 'evil.com']], 'HTTP/1.1'],
  ['a Host listing two names', [['Host', 'a.example, b.example']], 'HTTP/1.1'],
  ['no Host at all (HTTP/1.1)', [], 'HTTP/1.1'],
  ['no Host at all (HTTP/1.0)', [], 'HTTP/1.0'],
  ['X-Forwarded-Host of a hosted homeserver from an untrusted peer', [['Host', 'evil.com'], ['X-Forwarded-Host', 'a.example']], 'HTTP/1.1'],
];

function expectNotFound(res: SocketResponse): void {
  expect({ status: res.status, errcode: res.json()?.errcode }).toEqual({ status: 404, errcode: 'M_NOT_FOUND' });
}

describe.each(FAMILIES)('$name', (family) => {
  const call = (viaProxy: boolean, hostHeaders: Header[], version?: string) =>
    send(viaProxy, family.method, family.path(mediaId), [...hostHeaders, ...family.headers], family.body, version);

  test('is served for the tenant its Host names, on any port and in any case', async () => {
    expect((await call(false, [['Host', 'a.example']])).status).toBe(family.served);
    expect((await call(false, [['Host', 'A.Example:8448']])).status).toBe(family.served);
  });

  test.each(NO_TENANT)('%s: 404 M_NOT_FOUND, never the server name in the path', async (_name, hostHeaders, version) => {
    expectNotFound(await call(false, hostHeaders, version));
  });

  test('an untrusted peer\'s X-Forwarded-Host is ignored: its Host decides', async () => {
    expect((await call(false, [['Host', 'a.example'], ['X-Forwarded-Host', 'evil.com']])).status).toBe(family.served);
  });

  test('from a trusted proxy, X-Forwarded-Host decides over Host', async () => {
    expect((await call(true, [['Host', 'evil.com'], ['X-Forwarded-Host', 'a.example']])).status).toBe(family.served);
    expectNotFound(await call(true, [['Host', 'a.example'], ['X-Forwarded-Host', 'evil.com']]));
    expectNotFound(await call(true, [['Host', 'a.example'], ['X-Forwarded-Host', 'a.example'], ['X-Forwarded-Host', 'a.example']]));
    expectNotFound(await call(true, [['Host', 'a.example'], ['X-Forwarded-Host', '']]));
  });
});

test('the client token is checked by the tenant the rule resolved, X-Forwarded-Host included', async () => {
  const config = (hostHeaders: Header[], token: string) =>
    send(true, 'GET', '/_matrix/client/v1/media/config', [...hostHeaders, ['Authorization', `Bearer ${token}`]]);
  // Host names b.example, the trusted proxy says a.example: a.example's homeserver knows alice, b.example's does not.
  expect((await config([['Host', 'b.example'], ['X-Forwarded-Host', 'a.example']], 'tok-alice')).status).toBe(200);
  expect((await config([['Host', 'b.example'], ['X-Forwarded-Host', 'a.example']], 'tok-bob')).json()?.errcode).toBe('M_UNKNOWN_TOKEN');
});

test('media of another hosted homeserver is served from here to this tenant\'s user; Host alone decides whose token it is', async () => {
  const id = mediaId;
  const asBob = await send(false, 'GET', `/_matrix/client/v1/media/download/a.example/${id}`, [['Host', 'b.example'], ['Authorization', 'Bearer tok-bob']]);
  expect(asBob.status).toBe(200);
  expect(asBob.headers['content-type']).toBe('image/png');
  // alice's token means nothing to b.example's homeserver, even for a.example's media.
  const aliceViaB = await send(false, 'GET', `/_matrix/client/v1/media/download/a.example/${id}`, [['Host', 'b.example'], ...alice()]);
  expect(aliceViaB.json()?.errcode).toBe('M_UNKNOWN_TOKEN');
});

test('the health check needs no tenant', async () => {
  expect((await send(false, 'GET', '/healthz', [['Host', 'evil.com']])).status).toBe(200);
});
