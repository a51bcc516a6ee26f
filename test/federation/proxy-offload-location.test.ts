// Federation downloads through a real nginx running the README's snippet: the media part is a Location
// to a secure_link URL that nginx checks and serves; peers (here our own remote-media reader) follow it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Nginx } from '../../bench/media-processes.js';
import { fetchRemoteMedia, federationPath } from '../../src/federation/media.js';
import type { FederationClient } from '../../src/federation/client.js';
import { fileNameFromContentDisposition } from '../../src/matrix/content-disposition.js';
import { readMultipartMixed } from '../../src/matrix/multipart-reader.js';
import type { RunningService } from '../../src/service.js';
import { ProxyOffload } from '../../src/storage/proxy-offload.js';
import { createTestFederationClient } from '../helpers/federation-client.js';
import { LoopbackKeyServer, serverKeysResponse, V2 } from '../helpers/key-server.js';
import { generateSynapseKey } from '../helpers/keys.js';
import { describeWithNginx, startOffloadNginx } from '../helpers/nginx.js';
import { describeWithPython } from '../helpers/python-available.js';
import { withPythonWorker } from '../helpers/python-worker.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';
import { collect } from '../helpers/streams.js';

const MIN_BYTES = 64 * 1024;
const LARGE = randomBytes(2 * 1024 * 1024 + 3);
const SECRET = `secure-link-${randomBytes(12).toString('hex')}`;
const PEER = 'peer.test';

describeWithPython('federation downloads offloaded to nginx', () => describeWithNginx('a Location part to a secure_link URL', () => {
  let hs: StandInHomeserver;
  let keyServer: LoopbackKeyServer;
  let service: RunningService;
  let nginx: Nginx;
  let client: FederationClient;
  /** Signs as the same peer but reaches the service directly, past nginx. */
  let directClient: FederationClient;
  const logLines: string[] = [];

  beforeAll(async () => {
    const key = await generateSynapseKey('offload');
    keyServer = await LoopbackKeyServer.start();
    keyServer.answer(V2, await withPythonWorker((python) => serverKeysResponse(python, { serverName: PEER, verifyKeys: [key], validUntilTs: Date.now() + 86_400_000 })));
    hs = await startStandInHomeserver({ 'tok-alice': { userId: '@alice:a.example' } });
    const mediaPath = mkdtempSync(join(tmpdir(), 'media-repo-offload-'));
    process.env.OFFLOAD_TEST_SECRET = SECRET;
    const proxyOffload = {
      mode: 'x-accel-redirect', internalPrefix: '/_media_internal/default', minBytes: MIN_BYTES,
      secureLink: { prefix: '/_media_signed/default', secret: { env: 'OFFLOAD_TEST_SECRET' }, expirySeconds: 60 },
    };
    service = await startTestService({
      logLevel: 'debug',
      homeservers: [{ name: 'a.example', clientApi: hs.url, hostnames: ['127.0.0.1'] }],
      datastores: [{ id: 'default', type: 'file', forKinds: ['all'], opts: { path: mediaPath, proxyOffload } }],
      media: { maxUploadBytes: 8 * 1024 * 1024 },
      federation: { serverOverrides: { [PEER]: keyServer.url } },
    }, { logLines });
    nginx = await startOffloadNginx({ upstream: service.url, mediaPath, secret: SECRET });
    client = createTestFederationClient({ keys: { [PEER]: key }, overrides: { 'a.example': nginx.url }, allowlist: ['127.0.0.1/32'] }).client;
    directClient = createTestFederationClient({ keys: { [PEER]: key }, overrides: { 'a.example': service.url }, allowlist: ['127.0.0.1/32'] }).client;
  });
  afterAll(async () => {
    await nginx?.stop();
    await service?.close();
    await hs?.close();
    await keyServer?.close();
  });

  const upload = async (body: Buffer, name: string, type: string) => {
    const res = await rawRequest(`${service.url}/_matrix/media/v3/upload?filename=${encodeURIComponent(name)}`, {
      method: 'POST', headers: { host: 'a.example', authorization: 'Bearer tok-alice', 'content-type': type }, body,
    });
    expect(res.status).toBe(200);
    return String(res.json().content_uri).split('/').pop()!;
  };
  const fetchAsPeer = (mediaId: string, via = client) => fetchRemoteMedia(via, {
    origin: PEER, serverName: 'a.example', mediaId, timeoutMs: 1000, headersTimeoutMs: 10_000, maxBytes: 16 * 1024 * 1024, idleMs: 10_000,
  });
  /** The media part's Location, from a signed request through nginx. */
  const locationOf = async (mediaId: string) => {
    const res = await client.get('a.example', federationPath({ mediaId, timeoutMs: 1000 }), { origin: PEER, signed: true });
    expect(res.status).toBe(200);
    const part = await readMultipartMixed(res.body, res.headers['content-type']!);
    await collect(part.body);
    return part.location === undefined ? undefined : new URL(part.location);
  };

  test('a peer follows the Location and gets the bytes, the type and the file name, without authentication', async () => {
    const mediaId = await upload(LARGE, 'café photo.png', 'image/png');
    const location = (await locationOf(mediaId))!;
    expect(location.origin).toBe(nginx.url);
    expect(location.pathname).toMatch(/^\/_media_signed\/default\/[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{64}$/);

    const media = await fetchAsPeer(mediaId);
    expect(media.via).toBe('federation-location');
    expect(media.contentType).toBe('image/png');
    expect(media.contentDisposition).toMatch(/^inline; /);
    expect(fileNameFromContentDisposition(media.contentDisposition)).toBe('café photo.png');
    expect((await collect(media.body)).equals(LARGE)).toBe(true);
  });

  test('nginx refuses a tampered link with 403 and an expired one with 410', async () => {
    const mediaId = await upload(LARGE, 'report.pdf', 'application/pdf');
    const location = (await locationOf(mediaId))!;
    const status = async (change: (url: URL) => void) => {
      const url = new URL(location);
      change(url);
      return (await rawRequest(url.toString())).status;
    };
    expect(await status(() => undefined)).toBe(200);
    expect(await status((u) => u.searchParams.set('md5', `${u.searchParams.get('md5')!.slice(0, -2)}AA`))).toBe(403);
    expect(await status((u) => u.searchParams.set('type', 'text/html'))).toBe(403);
    expect(await status((u) => u.searchParams.set('cd', 'inline'))).toBe(403);
    expect(await status((u) => u.searchParams.set('name', 'evil.html'))).toBe(403);
    expect(await status((u) => u.searchParams.set('expires', String(Number(u.searchParams.get('expires')) + 3600)))).toBe(403);
    const otherBlob = (c: string) => (c === '0' ? '1' : '0');
    expect(await status((u) => void (u.pathname = u.pathname.replace(/[0-9a-f]$/, otherBlob)))).toBe(403);
    expect(await status((u) => u.searchParams.delete('md5'))).toBe(403);

    // Signed right (with the secret, as the service signs) but two minutes ago, for one minute.
    const sha = location.pathname.split('/').pop()!;
    const offload = new ProxyOffload({ mode: 'x-accel-redirect', internalPrefix: '/unused', minBytes: 0, secureLink: { prefix: '/_media_signed/default', secret: SECRET, expirySeconds: 60 } });
    const expired = offload.signedPath(sha, LARGE.length, { contentType: 'application/pdf', disposition: 'attachment', fileName: 'report.pdf' }, Date.now() - 120_000)!;
    expect((await rawRequest(`${nginx.url}${expired}`)).status).toBe(410);
    expect((await rawRequest(`${nginx.url}${expired.replace('attachment', 'inline')}`)).status).toBe(403);
  });

  test('small media, and types with parameters nginx could not copy, stay in the multipart body', async () => {
    const small = randomBytes(MIN_BYTES - 1);
    const smallId = await upload(small, 'small.bin', 'application/octet-stream');
    expect(await locationOf(smallId)).toBeUndefined();
    const smallMedia = await fetchAsPeer(smallId);
    expect(smallMedia.via).toBe('federation');
    expect((await collect(smallMedia.body)).equals(small)).toBe(true);

    const textId = await upload(LARGE, 'notes.txt', 'text/plain; charset=utf-8');
    expect(await locationOf(textId)).toBeUndefined();
    const text = await fetchAsPeer(textId);
    expect(text.contentType).toBe('text/plain; charset=utf-8');
    expect((await collect(text.body)).equals(LARGE)).toBe(true);
  });

  test('a request that did not come through the proxy gets the bytes in the multipart body, not a link', async () => {
    const mediaId = await upload(LARGE, 'past-nginx.png', 'image/png');
    const media = await fetchAsPeer(mediaId, directClient);
    expect(media.via).toBe('federation');
    expect(media.contentType).toBe('image/png');
    expect((await collect(media.body)).equals(LARGE)).toBe(true);
    // The same media through nginx is still a Location: only the announcement differs.
    expect(await locationOf(mediaId)).toBeDefined();
  });

  test('the shared secret never reaches the log', async () => {
    await fetchAsPeer(await upload(LARGE, 'log.bin', 'application/octet-stream'));
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain(SECRET);
  });
}));
