// Two instances on one database and one bucket behave as one service: an upload on either is served by
// the other; a transfer run from one moves rows and bytes while the other keeps serving (its cached rows
// invalidated within a poll); a presigned datastore answers downloads with 307.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Database } from '../../src/db/database.js';
import { DatastoreTransfer } from '../../src/media/datastore-transfer.js';
import type { RunningService } from '../../src/service.js';
import { openTwoDatabases } from '../helpers/database.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { rawRequest } from '../helpers/raw-http.js';
import { s3DatastoreConfig, startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const AUTH = { authorization: 'Bearer tok', host: 'a.example' };
const POLL_MS = 200;

describe('two instances on one database and one bucket', () => {
  let s3: TestS3Server;
  let hs: StandInHomeserver;
  let db: Database;
  let db2: Database;
  let one: RunningService;
  let two: RunningService;
  const disk = mkdtempSync(join(tmpdir(), 'instances-disk-'));

  beforeAll(async () => {
    s3 = await startS3Server();
    hs = await startStandInHomeserver({ tok: { userId: '@u:a.example' } });
    [db, db2] = await openTwoDatabases();
    const config = {
      masterKey: randomBytes(32).toString('hex'),
      cacheInvalidationPollMs: POLL_MS,
      media: { legacyFreezeAt: null },
      homeservers: [{ name: 'a.example', clientApi: hs.url }, { name: 'b.example', clientApi: hs.url }],
      datastores: [
        s3DatastoreConfig(s3, { id: 'bucket', prefix: 'shared/', forKinds: ['all'] }),
        // b.example's new media goes to the presigned datastore; a.example's to the bucket.
        s3DatastoreConfig(s3, { id: 'signed', prefix: 'signed/', forKinds: ['local_media'], opts: { redirect: 'presigned', presignExpirySeconds: 120 } }),
        { id: 'disk', type: 'file', forKinds: ['all'], opts: { path: disk } },
      ],
    };
    (config.datastores[1] as Record<string, unknown>).forHomeservers = ['b.example'];
    one = await startTestService(config, { db });
    two = await startTestService(config, { db: db2 });
  });
  afterAll(async () => {
    await two.close();
    await one.close();
    await hs.close();
    await s3.close();
  });

  const upload = (service: RunningService, body: Buffer, host = 'a.example') => rawRequest(`${service.url}/_matrix/media/v3/upload`, {
    method: 'POST', headers: { ...AUTH, host, 'content-type': 'text/plain' }, body,
  });
  const download = (service: RunningService, mxc: string, headers: Record<string, string> = {}, prefix = '/_matrix/client/v1/media') =>
    rawRequest(`${service.url}${prefix}/download/${mxc.slice('mxc://'.length)}`, { headers: { ...AUTH, host: mxc.slice(6).split('/')[0]!, ...headers } });

  test('an upload on one is served by the other, and the other way round', async () => {
    const first = patternBytes(300_000, 1);
    const second = patternBytes(1000, 2);
    const mxc1 = String((await upload(one, first)).json().content_uri);
    const mxc2 = String((await upload(two, second)).json().content_uri);
    expect(sha256((await download(two, mxc1)).body)).toBe(sha256(first));
    expect(sha256((await download(one, mxc2)).body)).toBe(sha256(second));
    const rows = await db.knex('media').whereIn('media_id', [mxc1, mxc2].map((m) => m.split('/').pop()!)).select('datastore_id');
    expect(rows.map((r: { datastore_id: string }) => r.datastore_id)).toEqual(['bucket', 'bucket']);
  });

  test('a transfer run from one instance: the other, holding the old row in cache, keeps serving', async () => {
    const body = patternBytes(50_000, 9);
    const mxc = String((await upload(one, body)).json().content_uri);
    // Both instances now cache the row naming the bucket.
    expect((await download(one, mxc)).status).toBe(200);
    expect((await download(two, mxc)).status).toBe(200);
    const services = one.services;
    const transfer = new DatastoreTransfer({ ...services, knex: services.db.knex }, { from: 'bucket', to: 'disk', homeserver: 'a.example', kind: 'local_media' });
    const outcome = await transfer.run(() => {}, (sha, error) => { throw new Error(`${sha}: ${String(error)}`); });
    expect(outcome.failed).toBe(0);
    expect(await one.services.datastores.get('bucket').has(sha256(body))).toBe(false);
    expect(await one.services.datastores.get('disk').has(sha256(body))).toBe(true);
    // The bytes left the bucket only after the other instance had dropped its cached row.
    for (const service of [two, one]) {
      const back = await download(service, mxc);
      expect([back.status, sha256(back.body)]).toEqual([200, sha256(body)]);
    }
  }, 30_000);

  test('presigned datastore: authenticated downloads get 307 to a URL serving the bytes and headers; legacy Range and HEAD are served here', async () => {
    const body = Buffer.from('signed and redirected');
    const mxc = String((await upload(one, body, 'b.example')).json().content_uri);
    const row = await db.knex('media').where({ media_id: mxc.split('/').pop() }).first();
    expect(row.datastore_id).toBe('signed');
    const redirected = await download(two, mxc);
    expect(redirected.status).toBe(307);
    expect(redirected.headers['cache-control']).toBe('no-store');
    const target = await fetch(String(redirected.headers.location));
    expect(Buffer.from(await target.arrayBuffer())).toEqual(body);
    expect(target.headers.get('content-type')).toBe('text/plain');
    expect(target.headers.get('content-disposition')).toMatch(/^inline/);
    // Legacy endpoints: 307 without Range; a ranged request is answered directly.
    const legacy = await download(two, mxc, {}, '/_matrix/media/v3');
    expect(legacy.status).toBe(307);
    const ranged = await download(two, mxc, { range: 'bytes=0-5' }, '/_matrix/media/v3');
    expect([ranged.status, ranged.body.toString()]).toEqual([206, 'signed']);
    const head = await rawRequest(`${two.url}/_matrix/client/v1/media/download/${mxc.slice(6)}`, { method: 'HEAD', headers: { ...AUTH, host: 'b.example' } });
    expect(head.status).toBe(200);
    // a.example's media sits in the plain bucket: no redirect there.
    const plain = String((await upload(one, body)).json().content_uri);
    expect((await download(two, plain)).status).toBe(200);
  });
});
