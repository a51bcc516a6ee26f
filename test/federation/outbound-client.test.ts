// The signing client's own decisions, against a scripted peer on loopback that records each request whole:
// what it signs, which scheme it sends when, which refusals downgrade and for how long, and how answers become errors.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthScheme } from '../../src/federation/client.js';
import { DOWNGRADE_MEMORY_MS, errcodeOf, NoSigningKeyError, readErrorBody, RemoteHttpError } from '../../src/federation/client.js';
import { UpstreamError } from '../../src/federation/http.js';
import { encodeBase64 } from '../../src/matrix/base64.js';
import { createSigner, generateSeed } from '../../src/matrix/ed25519.js';
import { authorizationHeaderValues, parseAuthorization, verifyRequestSignature } from '../../src/matrix/x-matrix.js';
import { createTestFederationClient } from '../helpers/federation-client.js';
import { collect, failure } from '../helpers/streams.js';

const TENANT = 'tenant.test';
const seed = generateSeed();
const signer = createSigner(seed);
const publicKey = encodeBase64(signer.publicKey);
const key = { keyId: 'ed25519:t1', version: 't1', seed: encodeBase64(seed), publicKey, file: `ed25519 t1 ${encodeBase64(seed)}\n` };

interface Seen { method: string; url: string; contentType: string | undefined; authorization: string[]; body: string }
interface Answer { status: number; body: string }
const seen: Seen[] = [];
/** Per path: the answers in turn (the last one repeats); an X-Matrix request gets `xMatrix` when set. */
const script = new Map<string, { answers: Answer[]; xMatrix?: Answer }>();
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const authorization = authorizationHeaderValues(req.rawHeaders);
      seen.push({ method: req.method!, url: req.url!, contentType: req.headers['content-type'], authorization, body: Buffer.concat(chunks).toString() });
      const entry = script.get(new URL(req.url!, 'http://x').pathname) ?? { answers: [{ status: 404, body: '{"errcode":"M_NOT_FOUND"}' }] };
      const plain = authorization.length > 0 && authorization.every((h) => h.startsWith('X-Matrix '));
      const answer = (plain ? entry.xMatrix : undefined) ?? (entry.answers.length > 1 ? entry.answers.shift()! : entry.answers[0]!);
      res.writeHead(answer.status, { 'Content-Type': 'application/json' });
      res.end(answer.body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));
beforeEach(() => {
  seen.length = 0;
  script.clear();
  logLines.length = 0;
});

let now = 1_000_000;
const logLines: string[] = [];
function makeClient(options: { scope?: string[]; scheme?: AuthScheme; filtered?: boolean } = {}) {
  const peers = ['peer.test', 'peer2.test', 'notary.test'];
  return createTestFederationClient({
    keys: { [TENANT]: { ...key, scope: options.scope } },
    overrides: Object.fromEntries(peers.map((p) => [p, url])),
    allowlist: options.filtered ? [] : ['127.0.0.1/32'],
    now: () => now,
    logLines,
    schemes: options.scheme === undefined ? undefined : { schemeFor: async (origin) => (origin === TENANT ? options.scheme : undefined) },
  }).client;
}

const schemesOf = (s: Seen) => s.authorization.map((h) => h.split(' ', 1)[0]);
const get = (client: ReturnType<typeof makeClient>, path: string, serverName = 'peer.test') => client.get(serverName, path, { origin: TENANT, signed: true });

test('each header is a signature by our key of this GET, its path with query, our name and the destination', async () => {
  const client = makeClient({ scheme: 'x-matrix+scoped' });
  script.set('/a', { answers: [{ status: 200, body: '{}' }] });
  await collect((await get(client, '/a?x=1', 'peer2.test')).body);
  const [request] = seen;
  expect(schemesOf(request!)).toEqual(['X-Matrix', 'X-MSC4100-Scoped']);
  for (const [header, scheme] of [[request!.authorization[0]!, 'X-Matrix'], [request!.authorization[1]!, 'X-MSC4100-Scoped']] as const) {
    const parsed = parseAuthorization([header], scheme)!;
    expect([parsed.origin, parsed.destination, Object.keys(parsed.signatures)]).toEqual([TENANT, 'peer2.test', [key.keyId]]);
    const signed = { method: 'GET', uri: '/a?x=1', origin: TENANT, destination: 'peer2.test' };
    expect(verifyRequestSignature(signed, key.keyId, parsed.signatures[key.keyId]!, signer.publicKey)).toBe(true);
    expect(verifyRequestSignature({ ...signed, uri: '/a' }, key.keyId, parsed.signatures[key.keyId]!, signer.publicKey)).toBe(false);
  }
  client.close();
});

test('an unsigned GET carries no Authorization; a signed one needs an origin with a key', async () => {
  const client = makeClient();
  script.set('/k', { answers: [{ status: 200, body: '{"ok":1}' }] });
  await collect((await client.get('peer.test', '/k', { signed: false, origin: TENANT })).body);
  expect(seen.map((s) => s.authorization)).toEqual([[]]);
  expect((await failure(client.get('peer.test', '/k', { signed: true }))).message).toBe('a signed request needs an origin');
  const keyless = await failure(client.get('peer.test', '/k', { signed: true, origin: 'keyless.test' }));
  expect([keyless instanceof NoSigningKeyError, keyless.name, keyless.message]).toEqual([true, 'NoSigningKeyError', 'homeserver keyless.test has no signing key']);
  expect(seen).toHaveLength(1);
  client.close();
});

test.each<[string, AuthScheme | undefined, string[] | undefined, string[]]>([
  ['published x-matrix, scoped key', 'x-matrix', undefined, ['X-Matrix']],
  ['published x-matrix+scoped', 'x-matrix+scoped', undefined, ['X-Matrix', 'X-MSC4100-Scoped']],
  ['scoped-first', 'scoped-first', undefined, ['X-MSC4100-Scoped']],
  ['nothing known, scoped key', undefined, undefined, ['X-MSC4100-Scoped']],
  ['nothing known, key without m.requests', undefined, [], ['X-Matrix']],
])('%s (scheme %s, scope %j): the first request carries %j', async (_name, scheme, scope, expected) => {
  const client = makeClient({ scheme, scope });
  script.set('/s', { answers: [{ status: 200, body: '{}' }] });
  await collect((await get(client, '/s')).body);
  expect(seen.map(schemesOf)).toEqual([expected]);
  client.close();
});

test.each([
  ['401 with any errcode', 401, '{"errcode":"M_MISSING_TOKEN"}', true],
  ['401 without a JSON body', 401, 'no', true],
  ['400 M_UNAUTHORIZED', 400, '{"errcode":"M_UNAUTHORIZED"}', true],
  ['403 M_FORBIDDEN', 403, '{"errcode":"M_FORBIDDEN"}', true],
  ['400 M_BAD_JSON', 400, '{"errcode":"M_BAD_JSON","error":"x"}', false],
  ['403 M_LIMIT_EXCEEDED', 403, '{"errcode":"M_LIMIT_EXCEEDED"}', false],
  ['404 M_UNAUTHORIZED', 404, '{"errcode":"M_UNAUTHORIZED"}', false],
  ['500 M_FORBIDDEN', 500, '{"errcode":"M_FORBIDDEN"}', false],
])('a scoped request answered %s (%s %s): downgraded to X-Matrix: %s', async (_name, status, body, downgrade) => {
  const client = makeClient();
  script.set('/r', { answers: [{ status, body }], xMatrix: { status: 200, body: '"plain"' } });
  const response = await get(client, '/r');
  expect(seen.map(schemesOf)).toEqual(downgrade ? [['X-MSC4100-Scoped'], ['X-Matrix']] : [['X-MSC4100-Scoped']]);
  // The caller gets the answer it would have had, body included, even where the refusal was read here.
  expect([response.status, (await collect(response.body)).toString()]).toEqual(downgrade ? [200, '"plain"'] : [status, body]);
  client.close();
});

test('a downgrade is remembered per destination for DOWNGRADE_MEMORY_MS, then the scoped scheme is offered again', async () => {
  const client = makeClient();
  script.set('/d', { answers: [{ status: 401, body: '{"errcode":"M_UNAUTHORIZED"}' }], xMatrix: { status: 200, body: '{}' } });
  now = 1_000_000;
  const fetch = async (serverName = 'peer.test') => {
    seen.length = 0;
    await collect((await get(client, '/d', serverName)).body);
    return seen.map(schemesOf);
  };
  expect(await fetch()).toEqual([['X-MSC4100-Scoped'], ['X-Matrix']]);
  expect(logLines.map((l) => JSON.parse(l) as Record<string, unknown>).map((l) => [l.destination, l.status, l.msg]))
    .toEqual([['peer.test', 401, 'X-MSC4100-Scoped refused: retrying with X-Matrix']]);
  expect(await fetch('peer2.test')).toEqual([['X-MSC4100-Scoped'], ['X-Matrix']]);
  now += DOWNGRADE_MEMORY_MS - 1;
  expect(await fetch()).toEqual([['X-Matrix']]);
  now += 1;
  expect(await fetch()).toEqual([['X-MSC4100-Scoped'], ['X-Matrix']]);
  expect(await fetch()).toEqual([['X-Matrix']]);
  client.close();
});

describe('JSON answers for the keyring', () => {
  test.each([
    [200, '{"a":1}', { a: 1 }],
    [299, '[1]', [1]],
  ])('%s with JSON is the parsed body', async (status, body, expected) => {
    const client = makeClient();
    script.set('/_matrix/key/v2/server', { answers: [{ status, body }] });
    expect(await client.fetchServerKeysJson('peer.test', '/_matrix/key/v2/server')).toEqual(expected);
    client.close();
  });

  test.each([
    [404, '{"errcode":"M_NOT_FOUND","error":"x"}', 'M_NOT_FOUND'],
    [300, '{"errcode":"M_UNKNOWN"}', 'M_UNKNOWN'],
    [500, 'not json', undefined],
    [502, '{"errcode":7}', undefined],
  ])('%s is a RemoteHttpError with the errcode when there is one', async (status, body, errcode) => {
    const client = makeClient();
    script.set('/_matrix/key/v2/server', { answers: [{ status, body }] });
    const error = await failure(client.fetchServerKeysJson('peer.test', '/_matrix/key/v2/server'));
    expect([error instanceof RemoteHttpError, error.name]).toEqual([true, 'RemoteHttpError']);
    expect([(error as RemoteHttpError).status, (error as RemoteHttpError).errcode]).toEqual([status, errcode]);
    expect((error as RemoteHttpError).body).toEqual(body.startsWith('{') ? JSON.parse(body) : undefined);
    expect(error.message).toMatch(new RegExp(`^\\S+ answered ${status}${errcode ? ` ${errcode}` : ''}$`));
    client.close();
  });

  test('a 200 that is not JSON is a bad response', async () => {
    const client = makeClient();
    script.set('/_matrix/key/v2/server', { answers: [{ status: 200, body: '{"a":' }] });
    const error = await failure(client.fetchServerKeysJson('peer.test', '/_matrix/key/v2/server'));
    expect([error instanceof UpstreamError && error.kind, error.message]).toEqual(['bad-response', expect.stringMatching(/^\S+ answered with invalid JSON$/)]);
    client.close();
  });

  test.each([
    ['at its configured URL, under its path prefix', (u: string) => ({ serverName: 'notary.test', verifyKeys: {}, url: `${u}/prefix//` }), '/prefix/_matrix/key/v2/query'],
    ['found by discovery', () => ({ serverName: 'notary.test', verifyKeys: {} }), '/_matrix/key/v2/query'],
  ])('a notary %s is sent the query as a JSON POST', async (_name, notary, path) => {
    const client = makeClient();
    script.set(path, { answers: [{ status: 200, body: '{"server_keys":[]}' }] });
    const body = { server_keys: { 'a.test': { 'ed25519:x': { minimum_valid_until_ts: 5 } } } };
    expect(await client.queryNotary(notary(url), body, '/_matrix/key/v2/query')).toEqual({ server_keys: [] });
    expect(seen.map((s) => [s.method, s.url, s.contentType, JSON.parse(s.body), s.authorization])).toEqual([['POST', path, 'application/json', body, []]]);
    client.close();
  });
});

test('a key response over 1 MiB is refused, one of exactly 1 MiB is read', async () => {
  const client = makeClient();
  const json = (size: number) => `"${'a'.repeat(size - 2)}"`;
  script.set('/_matrix/key/v2/server', { answers: [{ status: 200, body: json(1024 * 1024) }, { status: 200, body: json(1024 * 1024 + 1) }] });
  expect(await client.fetchServerKeysJson('peer.test', '/_matrix/key/v2/server')).toHaveLength(1024 * 1024 - 2);
  const error = await failure(client.fetchServerKeysJson('peer.test', '/_matrix/key/v2/server'));
  expect([error instanceof UpstreamError && error.kind, error.message]).toEqual(['too-large', 'the JSON response is larger than the limit of 1048576 bytes']);
  client.close();
});

test('a notary URL is trusted like configuration: reached on loopback without the allow-list', async () => {
  const client = makeClient({ filtered: true });
  script.set('/_matrix/key/v2/query', { answers: [{ status: 200, body: '{"server_keys":[]}' }] });
  expect(await client.queryNotary({ serverName: 'notary.test', verifyKeys: {}, url }, {}, '/_matrix/key/v2/query')).toEqual({ server_keys: [] });
  client.close();
});

test('an error body over 64 KiB counts as empty, down to the caller', async () => {
  const client = makeClient();
  const big = JSON.stringify({ errcode: 'M_BAD_JSON', error: 'x'.repeat(64 * 1024) });
  script.set('/big', { answers: [{ status: 400, body: big }] });
  const response = await get(client, '/big');
  expect([response.status, (await collect(response.body)).length, seen.length]).toEqual([400, 0, 1]);
  client.close();
});

test('readErrorBody: the bytes, and whether they are JSON', async () => {
  const client = makeClient();
  script.set('/j', { answers: [{ status: 500, body: '{"errcode":"M_X"}' }] });
  script.set('/t', { answers: [{ status: 500, body: 'oops' }] });
  const read = async (path: string) => readErrorBody(await client.get('peer.test', path, { signed: false }));
  expect(await read('/j')).toEqual({ bytes: Buffer.from('{"errcode":"M_X"}'), isJson: true, json: { errcode: 'M_X' } });
  expect(await read('/t')).toEqual({ bytes: Buffer.from('oops'), isJson: false, json: undefined });
  client.close();
});

test('close ends the pooled connections to peers', async () => {
  const client = makeClient();
  const open = new Set<unknown>();
  const track = (socket: import('node:net').Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  };
  server.on('connection', track);
  script.set('/c', { answers: [{ status: 200, body: '{}' }] });
  await collect((await get(client, '/c')).body);
  expect(open.size).toBe(1);
  client.close();
  const deadline = Date.now() + 5000;
  while (open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  server.off('connection', track);
  expect(open.size).toBe(0);
});

test('errcodeOf reads only a string errcode of an object', () => {
  expect([errcodeOf({ errcode: 'M_X' }), errcodeOf({ errcode: 1 }), errcodeOf(null), errcodeOf('M_X'), errcodeOf(undefined)]).toEqual(['M_X', undefined, undefined, undefined, undefined]);
});
