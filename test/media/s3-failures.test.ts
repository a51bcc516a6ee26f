// S3 misbehaving behind a loopback proxy (down, slow, 500, 503 SlowDown, connection dropped mid-upload
// and mid-read): the client gets a clear Matrix error (or, mid-read, a cut connection), nothing partial
// is recorded, and the service works again as soon as S3 does, with no restart.
import { createHash } from 'node:crypto';
import type { RunningService } from '../../src/service.js';
import { S3Datastore } from '../../src/storage/s3.js';
import { sweepStaging } from '../../src/storage/staging.js';
import { startFaultyProxy, type FaultyProxy, type ProxyMode } from '../helpers/faulty-proxy.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { rawRequest } from '../helpers/raw-http.js';
import { s3DatastoreConfig, s3Listing, startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const AUTH = { authorization: 'Bearer tok', host: 'a.example' };

describe('S3 failures', () => {
  let s3: TestS3Server;
  let proxy: FaultyProxy;
  let hs: StandInHomeserver;
  let service: RunningService;
  /** The same bucket and prefix, reached directly: what is really stored. */
  let direct: S3Datastore;

  beforeAll(async () => {
    s3 = await startS3Server();
    proxy = await startFaultyProxy({ host: '127.0.0.1', port: s3.port });
    hs = await startStandInHomeserver({ tok: { userId: '@u:a.example' } });
    const datastore = s3DatastoreConfig({ endpoint: proxy.url, bucket: s3.bucket }, { id: 'default', opts: { timeoutMs: 2000, maxAttempts: 2 } });
    service = await startTestService({ homeservers: [{ name: 'a.example', clientApi: hs.url, maxUploadBytes: 64 * MiB }], datastores: [datastore] });
    const opts = (datastore.opts as { prefix: string });
    direct = new S3Datastore('direct', {
      endpoint: s3.endpoint, region: 'us-east-1', bucketName: s3.bucket, prefix: opts.prefix, forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, redirect: 'off', presignExpirySeconds: 60, maxAttempts: 1, timeoutMs: 5000,
    });
  });
  afterAll(async () => {
    direct.close();
    await service.close();
    await hs.close();
    await proxy.close();
    await s3.close();
  });
  afterEach(() => { proxy.mode = { kind: 'pass' }; });

  const upload = (body: Buffer) => rawRequest(`${service.url}/_matrix/media/v3/upload`, {
    method: 'POST', headers: { ...AUTH, 'content-type': 'application/octet-stream', 'content-length': String(body.length) }, body,
  });
  const download = (mxc: string) => rawRequest(`${service.url}/_matrix/client/v1/media/download/${mxc.slice('mxc://'.length)}`, { headers: AUTH, allowIncomplete: true });
  const rows = async () => Number((await service.services.db.knex('media').count<{ c: string }[]>({ c: '*' }))[0]!.c);

  const uploadFailures: Array<[string, ProxyMode]> = [
    ['down', { kind: 'down' }],
    ['answering 500', { kind: 'status', status: 500, code: 'InternalError' }],
    ['answering 503 SlowDown', { kind: 'status', status: 503, code: 'SlowDown' }],
    ['too slow', { kind: 'slow', delayMs: 4500 }],
    ['dropping the connection mid-upload', { kind: 'dropUpload', afterBytes: 2 * MiB }],
  ];
  test.each(uploadFailures)('upload while S3 is %s: 503 M_UNKNOWN, no row, no blob; then uploads work again', async (_name, mode) => {
    const body = patternBytes(12 * MiB + 1, 7);
    const rowsBefore = await rows();
    const blobsBefore = (await s3Listing(direct, s3)).blobs;
    proxy.mode = mode;
    const failed = await upload(body);
    expect(failed.status).toBe(503);
    expect(failed.json()).toEqual({ errcode: 'M_UNKNOWN', error: 'Media storage is unreachable: retry later', retry_after_ms: 5000 });
    expect(await rows()).toBe(rowsBefore);
    proxy.mode = { kind: 'pass' };
    expect((await s3Listing(direct, s3)).blobs).toEqual(blobsBefore);
    // Leftovers of an abort S3 never received are staging only, and the staging sweep takes them once their writer is gone.
    await sweepStaging(direct, { live: async () => new Set(), unnamedOlderThanMs: 0 });
    expect((await s3Listing(direct, s3)).staged).toEqual([]);
    const ok = await upload(body);
    expect(ok.status).toBe(200);
    const back = await download(String(ok.json().content_uri));
    expect(back.status).toBe(200);
    expect(sha256(back.body)).toBe(sha256(body));
  }, 60_000);

  const readFailures: Array<[string, ProxyMode]> = [
    ['down', { kind: 'down' }],
    ['answering 500', { kind: 'status', status: 500, code: 'InternalError' }],
    ['answering 503 SlowDown', { kind: 'status', status: 503, code: 'SlowDown' }],
    ['too slow', { kind: 'slow', delayMs: 4500 }],
  ];
  test.each(readFailures)('download while S3 is %s: 503 M_UNKNOWN; then the same download works', async (_name, mode) => {
    const body = patternBytes(MiB, 3);
    const mxc = String((await upload(body)).json().content_uri);
    proxy.mode = mode;
    const failed = await download(mxc);
    expect(failed.status).toBe(503);
    expect(failed.json()).toMatchObject({ errcode: 'M_UNKNOWN' });
    proxy.mode = { kind: 'pass' };
    const back = await download(mxc);
    expect([back.status, sha256(back.body)]).toEqual([200, sha256(body)]);
  }, 60_000);

  test('a connection dropped mid-read cuts the response short (its Content-Length says so); the next read is whole', async () => {
    const body = patternBytes(4 * MiB, 5);
    const mxc = String((await upload(body)).json().content_uri);
    proxy.mode = { kind: 'dropDownload', afterBytes: MiB };
    const cut = await download(mxc);
    expect(cut.status).toBe(200);
    expect(cut.headers['content-length']).toBe(String(body.length));
    expect(cut.complete).toBe(false);
    expect(cut.body.length).toBeLessThan(body.length);
    proxy.mode = { kind: 'pass' };
    const back = await download(mxc);
    expect([back.status, back.complete, sha256(back.body)]).toEqual([200, true, sha256(body)]);
  }, 60_000);
});
