// Outbound media fetches at their edges: limits at their exact size, answers that are neither media nor a
// known refusal, Location parts that cannot be followed, and the declared length a caller checks first.
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { RemoteHttpError, type FederationClient } from '../../src/federation/client.js';
import { UpstreamError } from '../../src/federation/http.js';
import { MultipartError } from '../../src/matrix/multipart.js';
import { fetchRemoteMedia } from '../../src/federation/media.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { createTestFederationClient } from '../helpers/federation-client.js';
import { cdn, client, key, remote, REMOTE, request, TENANT, useOutboundPeers } from '../helpers/outbound-peers.js';
import { collect, failure } from '../helpers/streams.js';
import { describeWithPython } from '../helpers/python-available.js';
import { freePort } from '../../bench/media-processes.js';

useOutboundPeers();

const BOUNDARY = 'edge0boundary';
const federationPath = (id: string) => `/_matrix/federation/v1/media/download/${id}`;
const legacyPath = (id: string) => `/_matrix/media/v3/download/${REMOTE}/${id}`;
/** A federation answer written by hand: a JSON part, then a media part with these header lines. */
const multipart = (partHeaders: string, bytes = '') => ({
  headers: { 'Content-Type': `multipart/mixed; boundary=${BOUNDARY}` },
  body: Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${BOUNDARY}\r\n${partHeaders}\r\n${bytes}\r\n--${BOUNDARY}--\r\n`),
});

describeWithPython('sizes', () => {
  test('media of exactly maxBytes arrives whole over federation, the multipart framing not counted against it', async () => {
    const bytes = patternBytes(300_000, 5);
    remote.media.set('exact', { kind: 'multipart', bytes });
    const media = await fetchRemoteMedia(client, request('exact', { maxBytes: bytes.length }));
    expect((await collect(media.body)).equals(bytes)).toBe(true);
  });

  test('a multipart response declaring more than maxBytes and its framing allowance fails at once, saying so', async () => {
    remote.media.set('declared-whole', { kind: 'oversized', size: 600_000, declareLength: true });
    const error = await failure(fetchRemoteMedia(client, request('declared-whole', { maxBytes: 100_000 })));
    expect([(error as UpstreamError).kind, error.message]).toEqual(['too-large', expect.stringMatching(/^the multipart response is \d+ bytes, more than the limit of 362144$/)]);
  });

  test.each([
    ['42', 42],
    ['0', 0],
    ['1234567', 1234567],
    ['4x2', undefined],
    ['x42', undefined],
    ['42x', undefined],
    ['-1', undefined],
    ['', undefined],
    ['\r\n 42', 42], // folded onto a continuation line: the reader joins it with a space
  ])('a media part declaring Content-Length %j gives declaredLength %s', async (value, expected) => {
    const id = `declared-${Buffer.from(value).toString('hex')}`;
    remote.files.set(federationPath(id), multipart(`Content-Type: image/png\r\nContent-Length: ${value}\r\n`));
    const media = await fetchRemoteMedia(client, request(id));
    media.body.destroy();
    expect(media.declaredLength).toBe(expected);
  });

  test('a plain answer (legacy, or where a Location points) gives its Content-Length as declaredLength', async () => {
    remote.media.set('legacy-declared', { kind: 'legacy-only', bytes: patternBytes(1234) });
    const legacy = await fetchRemoteMedia(client, request('legacy-declared'));
    expect([legacy.via, legacy.declaredLength, (await collect(legacy.body)).length]).toEqual(['legacy', 1234, 1234]);
    cdn.files.set('/declared', { headers: { 'Content-Length': '77' }, body: patternBytes(77) });
    remote.media.set('located-declared', { kind: 'location', location: `${cdn.url}/declared` });
    const located = await fetchRemoteMedia(client, request('located-declared'));
    expect([located.via, located.declaredLength, (await collect(located.body)).length]).toEqual(['federation-location', 77, 77]);
  });

  test('a plain answer over maxBytes fails as "the media"', async () => {
    remote.media.set('legacy-big', { kind: 'legacy-only', bytes: patternBytes(2000) });
    const error = await failure(fetchRemoteMedia(client, request('legacy-big', { maxBytes: 1999 })));
    expect([(error as UpstreamError).kind, error.message]).toEqual(['too-large', 'the media is 2000 bytes, more than the limit of 1999']);
  });
});

describeWithPython('answers that are not media', () => {
  test('a 200 that is not multipart, or has no Content-Type, is an unreadable body from the origin', async () => {
    remote.files.set(federationPath('not-multipart'), { headers: { 'Content-Type': 'text/plain' }, body: Buffer.from('hello') });
    const error = await failure(fetchRemoteMedia(client, request('not-multipart')));
    expect(error).toBeInstanceOf(UpstreamError);
    expect([(error as UpstreamError).kind, error.message]).toEqual(['bad-response', 'remote.test sent an unreadable multipart body: expected multipart/mixed, got "text/plain"']);
    expect((error as UpstreamError).cause).toBeInstanceOf(MultipartError);
    remote.files.set(federationPath('untyped'), { body: Buffer.from('hello') });
    const untyped = await failure(fetchRemoteMedia(client, request('untyped')));
    expect(untyped.message).toBe('remote.test sent an unreadable multipart body: expected multipart/mixed, got ""');
  });

  test.each([
    ['500 without JSON', 500, { 'Content-Type': 'text/html' }, '<html>oops</html>', undefined],
    ['405 with another errcode', 405, { 'Content-Type': 'application/json' }, '{"errcode":"M_FORBIDDEN"}', 'M_FORBIDDEN'],
    ['400 M_UNRECOGNIZED', 400, { 'Content-Type': 'application/json' }, '{"errcode":"M_UNRECOGNIZED"}', 'M_UNRECOGNIZED'],
  ])('%s is the origin\'s answer: no legacy request', async (_what, status, headers, body, errcode) => {
    const id = `refusal-${status}`;
    remote.files.set(federationPath(id), { status, headers, body: Buffer.from(body) });
    const error = await failure(fetchRemoteMedia(client, request(id)));
    expect([error instanceof RemoteHttpError, (error as RemoteHttpError).status, (error as RemoteHttpError).errcode]).toEqual([true, status, errcode]);
    expect(remote.requestsFor(legacyPath(id))).toHaveLength(0);
  });

  test('a legacy answer that is not 200 is the error; a redirect without Location, or a Location on a 200, is not followed', async () => {
    remote.media.set('legacy-missing', { kind: 'legacy-only', bytes: Buffer.alloc(0) });
    remote.files.set(legacyPath('legacy-missing'), { status: 302, headers: { 'Content-Type': 'application/json' }, body: Buffer.from('{"errcode":"M_NOT_FOUND"}') });
    const error = await failure(fetchRemoteMedia(client, request('legacy-missing')));
    expect([error instanceof RemoteHttpError, (error as RemoteHttpError).status, (error as RemoteHttpError).errcode]).toEqual([true, 302, 'M_NOT_FOUND']);

    cdn.files.set('/elsewhere', { body: Buffer.from('elsewhere') });
    remote.media.set('legacy-located', { kind: 'legacy-only', bytes: Buffer.alloc(0) });
    remote.files.set(legacyPath('legacy-located'), { headers: { Location: `${cdn.url}/elsewhere` }, body: Buffer.from('here') });
    expect((await collect((await fetchRemoteMedia(client, request('legacy-located'))).body)).toString()).toBe('here');
    expect(cdn.requestsFor('/elsewhere')).toHaveLength(0);
  });

  test('a homeserver without a key and without a listener still gets the legacy media', async () => {
    remote.media.set('keyless-quiet', { kind: 'legacy-only', bytes: Buffer.from('quiet') });
    const media = await fetchRemoteMedia(client, request('keyless-quiet', { origin: 'keyless.test' }));
    expect((await collect(media.body)).toString()).toBe('quiet');
  });
});

describeWithPython('Location parts that cannot be followed', () => {
  let silent: Server;
  let refusedPort: number;
  const held = new Set<Socket>();

  beforeAll(async () => {
    // Accepts connections and never answers: a Location there runs into the header deadline.
    silent = createServer((socket) => void held.add(socket)).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    refusedPort = await freePort();
  });
  afterAll(() => {
    for (const socket of held) socket.destroy();
    return new Promise((resolve) => silent.close(resolve));
  });

  test('a Location that is not a URL is a bad response', async () => {
    remote.media.set('bad-location', { kind: 'location', location: 'http://[nope' });
    const error = await failure(fetchRemoteMedia(client, request('bad-location')));
    expect([(error as UpstreamError).kind, error.message]).toEqual(['bad-response', 'remote.test sent an invalid Location']);
  });

  test.each([
    ['refuses the connection', () => `http://127.0.0.1:${refusedPort}/x`, 'unreachable'],
    ['never answers', () => `http://127.0.0.1:${(silent.address() as AddressInfo).port}/x`, 'timeout'],
  ])('a Location whose server %s fails this media as a bad response, the cause kept', async (_what, location, cause) => {
    remote.media.set(`location-${cause}`, { kind: 'location', location: location() });
    const error = await failure(fetchRemoteMedia(client, request(`location-${cause}`, { headersTimeoutMs: 300 })));
    expect([(error as UpstreamError).kind, ((error as UpstreamError).cause as UpstreamError).kind]).toEqual(['bad-response', cause]);
    expect(error.message).toMatch(/^the Location remote\.test gave could not be fetched: /);
  });

  test('a redirect loop behind a Location keeps its own error', async () => {
    cdn.files.set('/edge-loop', { status: 302, headers: { Location: '/edge-loop' } });
    remote.media.set('edge-loop', { kind: 'location', location: `${cdn.url}/edge-loop` });
    const error = await failure(fetchRemoteMedia(client, request('edge-loop')));
    expect([(error as UpstreamError).kind, (error as UpstreamError).cause, error.message]).toEqual(['bad-response', undefined, expect.stringMatching(/^redirect loop at /)]);
  });

  test('a Location answering 404 is that answer, not a legacy fallback', async () => {
    cdn.files.set('/gone', { status: 404, headers: { 'Content-Type': 'application/json' }, body: Buffer.from('{"errcode":"M_NOT_FOUND"}') });
    remote.media.set('located-gone', { kind: 'location', location: `${cdn.url}/gone` });
    const error = await failure(fetchRemoteMedia(client, request('located-gone')));
    expect([error instanceof RemoteHttpError, (error as RemoteHttpError).status, (error as RemoteHttpError).errcode]).toEqual([true, 404, 'M_NOT_FOUND']);
    expect(remote.requestsFor(legacyPath('located-gone'))).toHaveLength(0);
  });
});

describeWithPython('an origin that stops answering', () => {
  let origin: HttpServer;
  let slowClient: FederationClient;

  beforeAll(async () => {
    // Federation: a multipart body that stops inside its JSON part; legacy: a 404 M_UNRECOGNIZED, then silence.
    origin = createHttpServer((req, res) => {
      if (req.url!.startsWith(federationPath('stops-early'))) {
        res.writeHead(200, { 'Content-Type': `multipart/mixed; boundary=${BOUNDARY}` });
        res.write(`--${BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{`);
      } else if (req.url!.startsWith(federationPath('legacy-silent'))) {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end('{"errcode":"M_UNRECOGNIZED"}');
      }
    }).listen(0, '127.0.0.1');
    await once(origin, 'listening');
    const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    ({ client: slowClient } = createTestFederationClient({ keys: { [TENANT]: key }, overrides: { 'slow.test': url }, allowlist: ['127.0.0.1/32'], requestTimeoutMs: 5000 }));
  });
  afterAll(() => {
    slowClient.close();
    origin.closeAllConnections();
    return new Promise((resolve) => origin.close(resolve));
  });

  test('a multipart body that stalls before the media part is a timeout, not an unreadable body', async () => {
    const error = await failure(fetchRemoteMedia(slowClient, request('stops-early', { serverName: 'slow.test', idleMs: 200 })));
    expect([(error as UpstreamError).kind, error.message]).toEqual(['timeout', 'the multipart response stalled for 200 ms']);
  });

  test('the legacy request has the same header deadline as the federation one', async () => {
    const started = Date.now();
    const error = await failure(fetchRemoteMedia(slowClient, request('legacy-silent', { serverName: 'slow.test', headersTimeoutMs: 300 })));
    expect([(error as UpstreamError).kind, error.message]).toEqual(['timeout', expect.stringMatching(/^127\.0\.0\.1:\d+ did not answer within 300 ms$/)]);
    expect(Date.now() - started).toBeLessThan(4000);
  });
});
