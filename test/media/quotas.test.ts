// Upload quotas through the real HTTP API: each limit refuses with a message naming it and stores nothing;
// dedup still counts; concurrent uploads on two instances cannot overshoot; homeservers stay apart.
import { createHash } from 'node:crypto';
import type { RunningService } from '../../src/service.js';
import { openTwoDatabases, REAL_POSTGRES_URL } from '../helpers/database.js';
import { blobFiles, patternBytes, sameDatastores, snapshot } from '../helpers/media-fixtures.js';
import { rawRequest, slices, stalledBody, type RawResponse } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const USERS = ['alice', 'bob', 'files', 'day', 'free', 'conc', 'pend'];
let whoami: StandInHomeserver;
let service: RunningService;
let second: RunningService;

beforeAll(async () => {
  const tokens: Record<string, { userId: string }> = {};
  for (const hs of ['a.example', 'b.example', 'c.example', 'd.example']) for (const u of [...USERS, 'carol', 'dave']) tokens[`${u}@${hs}`] = { userId: `@${u}:${hs}` };
  whoami = await startStandInHomeserver(tokens);
  const [dbA, dbB] = await openTwoDatabases();
  const config = {
    quotas: { users: [{ glob: '*', maxFiles: 1 }] },
    homeservers: [
      {
        name: 'a.example', clientApi: whoami.url,
        quotas: {
          users: [
            { glob: '@free:*', maxBytes: 0 },
            { glob: '@files:a.example', maxFiles: 2 },
            { glob: '@day:a.example', maxBytesPerDay: 500 },
            { glob: '@pend:a.example', maxFiles: 1, maxPending: 1 },
            { glob: '@*:a.example', maxBytes: 1000 },
          ],
        },
      },
      { name: 'b.example', clientApi: whoami.url, quotas: { homeserver: { maxBytes: 1500 } } },
      { name: 'c.example', clientApi: whoami.url },
      // A quota larger than the upload limit must not raise it.
      { name: 'd.example', clientApi: whoami.url, maxUploadBytes: 500, quotas: { users: [{ glob: '@dave:*', maxBytes: 500 }, { glob: '*', maxBytes: 1000 }] } },
    ],
  };
  service = await startTestService(config, { db: dbA });
  // A second instance on the same database and datastore.
  second = await startTestService({ ...config, datastores: await sameDatastores(service) }, { db: dbB });
});

afterAll(async () => {
  await second?.close();
  await service?.close();
  await whoami?.close();
});

function upload(user: string, hs: string, body: Buffer, options: { chunked?: boolean; via?: RunningService } = {}): Promise<RawResponse> {
  const headers: Record<string, string> = { Host: hs, Authorization: `Bearer ${user}@${hs}`, 'Content-Type': 'application/octet-stream' };
  return rawRequest(`${(options.via ?? service).url}/_matrix/media/v3/upload`, {
    method: 'POST', headers, body: options.chunked ? (async function* () { yield* slices(body, 64); })() : body, allowIncomplete: true,
  });
}

const get = (user: string, hs: string, path: string) =>
  rawRequest(`${service.url}${path}`, { headers: { Host: hs, Authorization: `Bearer ${user}@${hs}` } });

function expectQuotaRefusal(res: RawResponse, limit: string, scope = 'user'): void {
  expect(res.status).toBe(400);
  expect(res.json()).toMatchObject({ errcode: 'M_RESOURCE_LIMIT_EXCEEDED', limit, scope });
  expect(String(res.json().error)).toContain(`quota ${limit}`);
}

describe(`upload quotas (${REAL_POSTGRES_URL ? 'PostgreSQL' : 'embedded PGlite'})`, () => {
  test('maxBytes: a declared or streamed upload past it is refused naming it, and nothing is stored', async () => {
    expect((await upload('alice', 'a.example', patternBytes(600, 1))).status).toBe(200);
    const before = await snapshot(service);
    expectQuotaRefusal(await upload('alice', 'a.example', patternBytes(500, 2)), 'maxBytes');
    expectQuotaRefusal(await upload('alice', 'a.example', patternBytes(500, 3), { chunked: true }), 'maxBytes');
    expect(await snapshot(service)).toEqual(before);
    // Exactly up to the limit is allowed.
    expect((await upload('alice', 'a.example', patternBytes(400, 4), { chunked: true })).status).toBe(200);
  });

  test('a streamed upload is cut where the quota ends, not read to its end first', async () => {
    const answered = { done: false };
    const body = stalledBody(patternBytes(1010, 5), answered); // past the quota, of an undeclared length
    const before = await snapshot(service);
    const res = await rawRequest(`${service.url}/_matrix/media/v3/upload`, {
      method: 'POST', headers: { Host: 'a.example', Authorization: 'Bearer carol@a.example', 'Content-Type': 'application/octet-stream' }, body, allowIncomplete: true,
    });
    answered.done = true;
    expectQuotaRefusal(res, 'maxBytes');
    expect(await snapshot(service)).toEqual(before);
  });

  test('a quota larger than maxUploadBytes, or as large, does not replace it, declared or streamed', async () => {
    const before = await snapshot(service);
    for (const chunked of [false, true]) {
      const res = await upload('carol', 'd.example', patternBytes(501, 6), { chunked });
      expect([res.status, res.json().errcode]).toEqual([413, 'M_TOO_LARGE']);
    }
    expect(await snapshot(service)).toEqual(before);
    expect((await upload('carol', 'd.example', patternBytes(500, 6), { chunked: true })).status).toBe(200);
    // A quota exactly as large as the upload limit: the upload limit is what the refusal names.
    const even = await upload('dave', 'd.example', patternBytes(501, 7), { chunked: true });
    expect([even.status, even.json().errcode]).toEqual([413, 'M_TOO_LARGE']);
  });

  test('bytes someone else already stored still count against the uploader', async () => {
    const shared = patternBytes(600, 1); // alice's bytes
    const blobsBefore = await blobFiles(service);
    expect((await upload('bob', 'a.example', shared)).status).toBe(200);
    expect(await blobFiles(service)).toEqual(blobsBefore);
    const usage = await get('bob', 'a.example', '/_matrix/client/unstable/org.matrix.msc4034/media/usage');
    expect(usage.json()).toEqual({ 'org.matrix.msc4034.storage.used': 600, 'org.matrix.msc4034.storage.files': 1, 'org.matrix.msc4034.storage.size': 1000 });
    const before = await snapshot(service);
    expectQuotaRefusal(await upload('bob', 'a.example', shared), 'maxBytes');
    expect(await snapshot(service)).toEqual(before);
  });

  test('maxFiles, and the first matching glob wins over a later catch-all', async () => {
    expect((await upload('files', 'a.example', patternBytes(10, 5))).status).toBe(200);
    expect((await upload('files', 'a.example', patternBytes(10, 6))).status).toBe(200);
    expectQuotaRefusal(await upload('files', 'a.example', patternBytes(10, 7)), 'maxFiles');
    // @free matches maxBytes 0 (unlimited) before @*:a.example's 1000.
    expect((await upload('free', 'a.example', patternBytes(1500, 8))).status).toBe(200);
  });

  test('maxBytesPerDay counts the last 24 hours only', async () => {
    expect((await upload('day', 'a.example', patternBytes(300, 9))).status).toBe(200);
    expectQuotaRefusal(await upload('day', 'a.example', patternBytes(300, 10)), 'maxBytesPerDay');
    await service.services.db.knex('media').where({ server_name: 'a.example', user_id: '@day:a.example' }).update({ created_ts: Date.now() - 25 * 3600_000 });
    expect((await upload('day', 'a.example', patternBytes(300, 10))).status).toBe(200);
  });

  test('an async upload past a quota is refused at PUT and the reserved ID stays empty; maxPending comes from the rule', async () => {
    const auth = { Host: 'a.example', Authorization: 'Bearer pend@a.example' };
    expect((await upload('pend', 'a.example', patternBytes(10, 11))).status).toBe(200);
    const created = await rawRequest(`${service.url}/_matrix/media/v1/create`, { method: 'POST', headers: auth });
    expect(created.status).toBe(200);
    expect((await rawRequest(`${service.url}/_matrix/media/v1/create`, { method: 'POST', headers: auth })).status).toBe(429);
    const mediaId = String(created.json().content_uri).split('/').pop()!;
    const put = await rawRequest(`${service.url}/_matrix/media/v3/upload/a.example/${mediaId}`, {
      method: 'PUT', headers: { ...auth, 'Content-Type': 'text/plain' }, body: patternBytes(10, 12), allowIncomplete: true,
    });
    expectQuotaRefusal(put, 'maxFiles');
    const row = await service.services.db.knex('media').where({ server_name: 'a.example', media_id: mediaId }).first();
    expect(row.sha256).toBeNull();
  });

  test('/config reports what is left of the byte quota; unlimited users get maxUploadBytes', async () => {
    const conc = await get('conc', 'a.example', '/_matrix/client/v1/media/config');
    expect(conc.json()).toEqual({ 'm.upload.size': 1000, 'org.matrix.msc4034.storage.size': 1000 });
    const alice = await get('alice', 'a.example', '/_matrix/client/v1/media/config');
    expect(alice.json()['m.upload.size']).toBe(0);
    const free = await get('free', 'a.example', '/_matrix/client/v1/media/config');
    expect(free.json()).toEqual({ 'm.upload.size': service.services.config.media.maxUploadBytes });
  });

  test('concurrent uploads on two instances never overshoot: exactly what fits is stored', async () => {
    const bodies = Array.from({ length: 10 }, (_, i) => patternBytes(150, 100 + i));
    const results = await Promise.all(bodies.map((b, i) => upload('conc', 'a.example', b, { via: i % 2 ? second : service })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(6);
    for (const r of results.filter((x) => x.status !== 200)) expectQuotaRefusal(r, 'maxBytes');
    const rows = await service.services.db.knex('media').where({ server_name: 'a.example', user_id: '@conc:a.example' });
    expect(rows.reduce((sum, r) => sum + Number(r.size), 0)).toBe(900);
    const stored = new Set(await blobFiles(service));
    expect(rows.every((r) => stored.has(r.sha256))).toBe(true);
    const refusedHashes = bodies.filter((_, i) => results[i]!.status !== 200).map((b) => createHash('sha256').update(b).digest('hex'));
    expect(refusedHashes.filter((h) => stored.has(h))).toEqual([]);
  });

  test('a homeserver total counts every user of that homeserver and no other', async () => {
    expect((await upload('carol', 'b.example', patternBytes(1000, 20))).status).toBe(200);
    expectQuotaRefusal(await upload('dave', 'b.example', patternBytes(600, 21)), 'maxBytes', 'homeserver');
    expect((await upload('dave', 'b.example', patternBytes(500, 22))).status).toBe(200);
    // a.example's users, with far more stored, are not held by b.example's total, nor b's users by a's rules.
    expect((await upload('free', 'a.example', patternBytes(2000, 23))).status).toBe(200);
    const usage = await get('alice', 'b.example', '/_matrix/client/unstable/org.matrix.msc4034/media/usage');
    expect(usage.json()).toEqual({ 'org.matrix.msc4034.storage.used': 0, 'org.matrix.msc4034.storage.files': 0 });
  });

  test('a homeserver without its own quotas takes the top-level ones', async () => {
    expect((await upload('alice', 'c.example', patternBytes(10, 30))).status).toBe(200);
    expectQuotaRefusal(await upload('alice', 'c.example', patternBytes(10, 31)), 'maxFiles');
  });
});
