// Client downloads through a real lighttpd running contrib/lighttpd-offload.conf: the service authorises and
// answers X-Sendfile with an empty body, lighttpd sends the file (whole, a Range, or HEAD).
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningProgram } from '../../bench/media-processes.js';
import type { RunningService } from '../../src/service.js';
import { describeWithLighttpd, startOffloadLighttpd } from '../helpers/lighttpd.js';
import { expectMediaHeaders, uploadMedia } from '../helpers/offloaded-downloads.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const MIN_BYTES = 64 * 1024;
const LARGE = randomBytes(3 * 1024 * 1024 + 5);
const ALICE = { host: 'a.example', authorization: 'Bearer tok-alice' };

describeWithLighttpd('client downloads offloaded to lighttpd (X-Sendfile)', () => {
  let hs: StandInHomeserver;
  let service: RunningService;
  let lighttpd: RunningProgram;
  let mediaPath: string;

  beforeAll(async () => {
    hs = await startStandInHomeserver({ 'tok-alice': { userId: '@alice:a.example' } });
    mediaPath = mkdtempSync(join(tmpdir(), 'media-repo-xsendfile-'));
    service = await startTestService({
      homeservers: [{ name: 'a.example', clientApi: hs.url, hostnames: ['127.0.0.1'] }],
      // internalPrefix unset: the X-Sendfile path is the file's own, under the datastore's folder.
      datastores: [{ id: 'default', type: 'file', forKinds: ['all'], opts: { path: mediaPath, proxyOffload: { mode: 'x-sendfile', minBytes: MIN_BYTES } } }],
      media: { legacyFreezeAt: null, maxUploadBytes: 8 * 1024 * 1024 },
    });
    lighttpd = await startOffloadLighttpd({ upstream: service.url, mediaPath });
  });
  afterAll(async () => {
    await lighttpd?.stop();
    await service?.close();
    await hs?.close();
  });

  const viaLighttpd = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
    rawRequest(`${lighttpd.url}${path}`, { method, headers: { authorization: 'Bearer tok-alice', ...headers } });
  const upload = (body: Buffer, name: string, type: string, via = service.url) => uploadMedia(via, ALICE, body, name, type);

  test('the service names the file with X-Sendfile and an empty body; lighttpd sends the bytes with the media headers', async () => {
    const id = await upload(LARGE, 'clip.mp4', 'video/mp4');
    const direct = await rawRequest(`${service.url}/_matrix/client/v1/media/download/${id}`, { headers: { ...ALICE, 'x-sendfile-type': 'X-Sendfile' } });
    const sha = direct.headers.etag!.replaceAll('"', '');
    expect(direct.headers['x-sendfile']).toBe(join(mediaPath, sha.slice(0, 2), sha.slice(2, 4), sha));
    expect(direct.body.length).toBe(0);

    const res = await viaLighttpd(`/_matrix/client/v1/media/download/${id}`);
    expect(res.status).toBe(200);
    expect(res.headers.server).toMatch(/^lighttpd\//);
    // lighttpd dates the file it sent; the service sets no Last-Modified on what it streams.
    expect(res.headers['last-modified']).toBeDefined();
    expect(direct.headers['last-modified']).toBeUndefined();
    expect(res.body.equals(LARGE)).toBe(true);
    expect(res.headers['content-length']).toBe(String(LARGE.length));
    expect(res.headers['cache-control']).toBe('private, max-age=86400, immutable');
    expectMediaHeaders(res, 'video/mp4', /^inline; filename="clip\.mp4"$/);
  });

  test('Range and HEAD are answered by lighttpd from the file', async () => {
    const id = await upload(LARGE, 'data.bin', 'application/octet-stream');
    const ranged = await viaLighttpd(`/_matrix/client/v1/media/download/${id}`, { range: 'bytes=1000-200999' });
    expect(ranged.status).toBe(206);
    expect(ranged.headers['content-range']).toBe(`bytes 1000-200999/${LARGE.length}`);
    expect(ranged.body.equals(LARGE.subarray(1000, 201000))).toBe(true);
    expectMediaHeaders(ranged, 'application/octet-stream', /^attachment; filename="data\.bin"$/);

    const head = await viaLighttpd(`/_matrix/client/v1/media/download/${id}`, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(LARGE.length));
    expect(head.body.length).toBe(0);
  });

  test('refusals come before the offload, and a request lighttpd did not pass on gets the bytes from the service', async () => {
    const id = await upload(LARGE, 'q.bin', 'application/octet-stream', lighttpd.url); // uploads pass through it too
    const anonymous = await rawRequest(`${lighttpd.url}/_matrix/client/v1/media/download/${id}`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.json().errcode).toBe('M_MISSING_TOKEN');
    expect((await viaLighttpd('/_matrix/client/v1/media/download/a.example/nothingHere')).status).toBe(404);

    const direct = await rawRequest(`${service.url}/_matrix/client/v1/media/download/${id}`, { headers: ALICE });
    expect(direct.headers['x-sendfile']).toBeUndefined();
    expect(direct.body.equals(LARGE)).toBe(true);
  });
});
