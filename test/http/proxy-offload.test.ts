// Client downloads through a real nginx running the README's snippet: the service authorises and answers
// X-Accel-Redirect with an empty body, nginx sends the file (whole, a Range, or HEAD).
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Nginx } from '../../bench/media-processes.js';
import type { RunningService } from '../../src/service.js';
import { describeWithNginx, startOffloadNginx } from '../helpers/nginx.js';
import { expectMediaHeaders, uploadMedia } from '../helpers/offloaded-downloads.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const MIN_BYTES = 64 * 1024;
const LARGE = randomBytes(3 * 1024 * 1024 + 17);
const SMALL = randomBytes(MIN_BYTES - 1);
const ADMIN_TOKEN = 'offload-admin-token-0123456789';
const ALICE = { host: 'a.example', authorization: 'Bearer tok-alice' };
/** What the snippet's nginx adds to every request it passes on. */
const ANNOUNCED = { 'x-sendfile-type': 'X-Accel-Redirect' };

describeWithNginx('client downloads offloaded to nginx (X-Accel-Redirect)', () => {
  let hs: StandInHomeserver;
  let service: RunningService;
  let nginx: Nginx;
  let mediaPath: string;

  beforeAll(async () => {
    hs = await startStandInHomeserver({ 'tok-alice': { userId: '@alice:a.example' }, 'tok-bob': { userId: '@bob:b.example' } });
    mediaPath = mkdtempSync(join(tmpdir(), 'media-repo-offload-'));
    const proxyOffload = { mode: 'x-accel-redirect', internalPrefix: '/_media_internal/default', minBytes: MIN_BYTES };
    service = await startTestService({
      homeservers: [{ name: 'a.example', clientApi: hs.url, hostnames: ['127.0.0.1'] }, { name: 'b.example', clientApi: hs.url }],
      datastores: [
        // b.example's own media goes to a datastore without offload: the choice is per datastore, so per homeserver.
        { id: 'b-files', type: 'file', forKinds: ['local_media'], forHomeservers: ['b.example'], opts: { path: mkdtempSync(join(tmpdir(), 'media-repo-b-')) } },
        { id: 'default', type: 'file', forKinds: ['all'], opts: { path: mediaPath, proxyOffload } },
      ],
      media: { legacyFreezeAt: null, maxUploadBytes: 8 * 1024 * 1024 },
      sharedSecretAuth: { token: ADMIN_TOKEN },
    });
    nginx = await startOffloadNginx({ upstream: service.url, mediaPath, secret: 'unused-here' });
  });
  afterAll(async () => {
    await nginx?.stop();
    await service?.close();
    await hs?.close();
  });

  const viaNginx = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
    rawRequest(`${nginx.url}${path}`, { method, headers: { authorization: 'Bearer tok-alice', ...headers } });
  const upload = (body: Buffer, name: string, type: string, as = ALICE) => uploadMedia(service.url, as, body, name, type);

  test('the service answers a large download with X-Accel-Redirect and an empty body; nginx sends the bytes', async () => {
    const id = await upload(LARGE, 'clip.mp4', 'video/mp4');
    const direct = await rawRequest(`${service.url}/_matrix/client/v1/media/download/${id}`, { headers: { ...ALICE, ...ANNOUNCED } });
    const sha = direct.headers.etag!.replaceAll('"', '');
    expect(direct.status).toBe(200);
    expect(direct.headers['x-accel-redirect']).toBe(`/_media_internal/default/${sha.slice(0, 2)}/${sha.slice(2, 4)}/${sha}`);
    expect(direct.body.length).toBe(0);

    const res = await viaNginx(`/_matrix/client/v1/media/download/${id}`);
    expect(res.status).toBe(200);
    expect(res.body.equals(LARGE)).toBe(true);
    expect(res.headers['content-length']).toBe(String(LARGE.length));
    expect(res.headers['cache-control']).toBe('private, max-age=86400, immutable');
    expectMediaHeaders(res, 'video/mp4', /^inline; filename="clip\.mp4"$/);
  });

  test('a request on which no proxy announces X-Accel-Redirect gets the bytes from the service, whatever the size', async () => {
    const id = await upload(LARGE, 'direct.bin', 'application/octet-stream');
    for (const announced of [{}, { 'x-sendfile-type': 'X-Sendfile' }, { 'x-sendfile-type': '' }] as Array<Record<string, string>>) {
      const direct = await rawRequest(`${service.url}/_matrix/client/v1/media/download/${id}`, { headers: { ...ALICE, ...announced } });
      expect(direct.status).toBe(200);
      expect(direct.headers['x-accel-redirect']).toBeUndefined();
      expect(direct.headers['content-length']).toBe(String(LARGE.length));
      expect(direct.body.equals(LARGE)).toBe(true);
    }
    // Header values are case-insensitive tokens, as nginx or an operator may write them.
    const lower = await rawRequest(`${service.url}/_matrix/client/v1/media/download/${id}`, { headers: { ...ALICE, 'x-sendfile-type': 'x-accel-redirect' } });
    expect(lower.headers['x-accel-redirect']).toMatch(/^\/_media_internal\/default\//);
    expect(lower.body.length).toBe(0);
  });

  test('Range and HEAD are answered by nginx from the file', async () => {
    const id = await upload(LARGE, 'data.bin', 'application/octet-stream');
    const ranged = await viaNginx(`/_matrix/client/v1/media/download/${id}`, { range: 'bytes=1000-200999' });
    expect(ranged.status).toBe(206);
    expect(ranged.headers['content-range']).toBe(`bytes 1000-200999/${LARGE.length}`);
    expect(ranged.body.equals(LARGE.subarray(1000, 201000))).toBe(true);
    const suffix = await viaNginx(`/_matrix/client/v1/media/download/${id}/other.bin`, { range: 'bytes=-10' });
    expect(suffix.status).toBe(206);
    expect(suffix.body.equals(LARGE.subarray(LARGE.length - 10))).toBe(true);
    expectMediaHeaders(suffix, 'application/octet-stream', /^attachment; filename="other\.bin"$/);

    const head = await viaNginx(`/_matrix/client/v1/media/download/${id}`, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(LARGE.length));
    expect(head.headers['accept-ranges']).toBe('bytes');
    expect(head.body.length).toBe(0);
    expectMediaHeaders(head, 'application/octet-stream', /^attachment; filename="data\.bin"$/);

    // The client sees nginx's validator, and nginx answers it once the service has authorised the request.
    const again = await viaNginx(`/_matrix/client/v1/media/download/${id}`, { 'if-none-match': head.headers.etag! });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  test('the legacy endpoint is offloaded too, with its public caching', async () => {
    const id = await upload(LARGE, 'old.bin', 'application/octet-stream');
    const res = await viaNginx(`/_matrix/media/v3/download/${id}`, { authorization: '' });
    expect(res.status).toBe(200);
    expect(res.body.equals(LARGE)).toBe(true);
    expect(res.headers['cache-control']).toBe('public, max-age=86400, immutable');
  });

  test('below minBytes the service streams the bytes itself', async () => {
    const id = await upload(SMALL, 'small.bin', 'application/octet-stream');
    const direct = await rawRequest(`${service.url}/_matrix/client/v1/media/download/${id}`, { headers: { ...ALICE, ...ANNOUNCED } });
    expect(direct.headers['x-accel-redirect']).toBeUndefined();
    expect(direct.body.equals(SMALL)).toBe(true);
    expect((await viaNginx(`/_matrix/client/v1/media/download/${id}`)).body.equals(SMALL)).toBe(true);
  });

  test('refusals come before the offload: no token, quarantine, unknown media; the internal location is closed', async () => {
    const id = await upload(LARGE, 'q.bin', 'application/octet-stream');
    const anonymous = await rawRequest(`${nginx.url}/_matrix/client/v1/media/download/${id}`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.json().errcode).toBe('M_MISSING_TOKEN');
    const quarantined = await rawRequest(`${nginx.url}/_matrix/media/unstable/admin/quarantine/${id}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(quarantined.status).toBe(200);
    const refused = await viaNginx(`/_matrix/client/v1/media/download/${id}`);
    expect(refused.status).toBe(404);
    expect(refused.body.length).toBeLessThan(1000);
    expect((await viaNginx('/_matrix/client/v1/media/download/a.example/nothingHere')).status).toBe(404);
    const sha = (await rawRequest(`${service.url}/_matrix/client/v1/media/download/${await upload(LARGE, 'x.bin', 'text/x')}`, {
      headers: { ...ALICE, ...ANNOUNCED },
    })).headers.etag!.replaceAll('"', '');
    expect((await rawRequest(`${nginx.url}/_media_internal/default/${sha.slice(0, 2)}/${sha.slice(2, 4)}/${sha}`)).status).toBe(404);
  });

  test('another homeserver\'s user downloads it through its own Host; that homeserver\'s datastore without offload streams', async () => {
    const id = await upload(LARGE, 'shared.bin', 'application/octet-stream');
    const res = await viaNginx(`/_matrix/client/v1/media/download/${id}`, { host: 'b.example', authorization: 'Bearer tok-bob' });
    expect(res.status).toBe(200);
    expect(res.body.equals(LARGE)).toBe(true);

    const bob = { host: 'b.example', authorization: 'Bearer tok-bob' };
    const bobsId = await upload(LARGE, 'bob.bin', 'application/octet-stream', bob);
    const streamed = await rawRequest(`${service.url}/_matrix/client/v1/media/download/${bobsId}`, { headers: { ...bob, ...ANNOUNCED } });
    expect(streamed.headers['x-accel-redirect']).toBeUndefined();
    expect(streamed.body.equals(LARGE)).toBe(true);
  });
});
