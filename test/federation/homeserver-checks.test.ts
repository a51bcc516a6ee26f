// The doctor's checks one at a time, each against a loopback homeserver answering one way: the answers
// test/cli/doctor.test.ts (a whole service and set-up) does not reach.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildConfig, type HomeserverConfig } from '../../src/config/config.js';
import type { FederationClient } from '../../src/federation/client.js';
import { checkHomeserver, SERVED_BY, SERVED_BY_HEADER, type CheckResult } from '../../src/federation/homeserver-checks.js';
import { createFederationClient } from '../../src/federation/outbound.js';
import type { ActiveSigningKey } from '../../src/keys/signing-key-store.js';
import { createLogger } from '../../src/log.js';
import { encodeBase64 } from '../../src/matrix/base64.js';
import { createSigner } from '../../src/matrix/ed25519.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Server[] = [];
const clients: FederationClient[] = [];
let serial = 0;

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

async function homeserver(handler: Handler): Promise<{ name: string; url: string; seen: IncomingMessage[] }> {
  const seen: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    seen.push(req);
    handler(req, res);
  }).listen(0, '127.0.0.1');
  servers.push(server);
  await once(server, 'listening');
  return { name: `checked${++serial}.test`, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

const servedBy = { [SERVED_BY_HEADER]: SERVED_BY };

function activeKey(serverName: string): ActiveSigningKey {
  const signer = createSigner(new Uint8Array(randomBytes(32)));
  return { serverName, keyId: 'ed25519:checks', publicKey: encodeBase64(signer.publicKey), scope: ['m.requests'], signer };
}

async function check(hs: { name: string; url: string }, options: { key?: () => Promise<ActiveSigningKey | undefined>; timeoutMs?: number } = {}): Promise<Record<string, CheckResult>> {
  const config = buildConfig({ federation: { serverOverrides: { [hs.name]: hs.url }, requestTimeoutMs: 5_000 } });
  const signingKeys = { activeKey: options.key ?? (async () => undefined) };
  const federation = createFederationClient(config, signingKeys, createLogger('silent'));
  clients.push(federation);
  const tenant = { name: hs.name, clientApi: hs.url } as HomeserverConfig;
  const results = await checkHomeserver(tenant, { federation, signingKeys, timeoutMs: options.timeoutMs ?? 5_000 });
  return Object.fromEntries(results.map((r) => [r.check, r]));
}

test('a signing key that cannot be loaded fails its check with the reason, once, and no key is looked for', async () => {
  const hs = await homeserver((_req, res) => json(res, 404, { errcode: 'M_NOT_FOUND' }, servedBy));
  const results = await check(hs, { key: async () => Promise.reject(new Error('cannot decrypt the key\nsecond line')) });
  expect(results['signing key']).toMatchObject({ status: 'fail', detail: 'cannot decrypt the key: fix signingKeyPath' });
  expect(Object.keys(results).filter((c) => c.startsWith('key published'))).toEqual([]);
  expect(hs.seen.map((r) => r.url).filter((u) => u!.startsWith('/_matrix/key'))).toEqual([]);
});

test.each([
  [401, 'M_MISSING_TOKEN', 'ok'],
  [401, 'M_UNKNOWN_TOKEN', 'ok'],
  [401, 'M_FORBIDDEN', 'fail'],
  [403, 'M_MISSING_TOKEN', 'fail'],
  [200, undefined, 'fail'],
])('whoami answering %d %s is %s', async (status, errcode, expected) => {
  const hs = await homeserver((_req, res) => json(res, status, errcode ? { errcode } : { user_id: '@a:b' }));
  expect((await check(hs))['client API']!.status).toBe(expected);
});

test('whoami is asked once, without following a redirect, and a slow answer fails within the timeout', async () => {
  const redirecting = await homeserver((_req, res) => res.writeHead(302, { location: '/elsewhere' }).end());
  const redirected = (await check(redirecting))['client API']!;
  expect(redirected).toMatchObject({ status: 'fail', detail: expect.stringContaining('answered 302, not a Matrix client API') });
  expect(redirecting.seen.filter((r) => r.url!.includes('whoami') || r.url === '/elsewhere').map((r) => r.url)).toEqual(['/_matrix/client/v3/account/whoami']);
  const failing = await homeserver((req, res) => (req.url!.includes('whoami') ? req.socket.destroy() : json(res, 404, {})));
  expect((await check(failing))['client API']!.status).toBe('fail');
  expect(failing.seen.filter((r) => r.url!.includes('whoami'))).toHaveLength(1);
  const slow = await homeserver((req, res) => (req.url!.includes('whoami') ? setTimeout(() => json(res, 401, { errcode: 'M_MISSING_TOKEN' }), 3_000) : json(res, 404, {})));
  // Answered after 3 s it would pass: failing means the 300 ms timeout cut it.
  expect((await check(slow, { timeoutMs: 300 }))['client API']).toMatchObject({ status: 'fail', detail: expect.stringContaining('Timeout') });
});

test('a key answer without verify_keys does not list the key', async () => {
  const hs = await homeserver((req, res) => json(res, req.url!.startsWith('/_matrix/key') ? 200 : 404, { server_name: 'x' }, servedBy));
  const key = activeKey(hs.name);
  const results = await check(hs, { key: async () => key });
  expect(results['key published (v2)']).toMatchObject({ status: 'fail', detail: expect.stringContaining(`does not list ${key.keyId}`) });
});

test.each([
  [200, undefined, 'ok', 'reaches this service (200)'],
  [404, 'M_NOT_FOUND', 'ok', 'reaches this service (404 M_NOT_FOUND)'],
  [403, 'M_FORBIDDEN', 'ok', 'reaches this service (403 M_FORBIDDEN to a request without credentials, as expected)'],
  [404, 'M_UNRECOGNIZED', 'fail', 'this service answered 404 M_UNRECOGNIZED'],
  [502, undefined, 'fail', 'this service answered 502'],
  [500, 'M_NOT_FOUND', 'fail', 'this service answered 500 M_NOT_FOUND'],
])('an unsigned route check answered %d %s by this service is %s', async (status, errcode, expected, detail) => {
  const hs = await homeserver((_req, res) => json(res, status, errcode ? { errcode } : {}, servedBy));
  expect((await check(hs))['federation media route']).toMatchObject({ status: expected, detail });
});

test('a signed route check refused with 403 fails, and the request was signed by the homeserver', async () => {
  const hs = await homeserver((req, res) => json(res, req.url!.includes('/media/') ? 403 : 404, { errcode: 'M_FORBIDDEN' }, servedBy));
  const results = await check(hs, { key: async () => activeKey(hs.name) });
  expect(results['federation media route']).toMatchObject({ status: 'fail', detail: expect.stringContaining("refused the homeserver's own signature (403 M_FORBIDDEN)") });
  const probe = hs.seen.find((r) => r.url!.startsWith('/_matrix/federation/v1/media/download/doctor-'))!;
  expect(probe.headers.authorization).toMatch(new RegExp(`^(X-Matrix|X-MSC4100-Scoped) origin="${hs.name.replace('.', '\\.')}",`));
});
