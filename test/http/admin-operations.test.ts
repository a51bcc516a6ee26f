// The admin API's operations end to end: quarantine (and what it hides), purge with dry runs, real
// deletion of bytes, usage reports, background tasks and bad input.
import sharp from 'sharp';
import { adminCall, ALICE, AMY, cacheRemote, CAROL, downloadAs, mediaRow, ROOT, startAdminBed, uploadAs, type AdminBed } from '../helpers/admin-service.js';
import { blobFiles, sha256Hex } from '../helpers/media-fixtures.js';
import { rawRequest } from '../helpers/raw-http.js';

let bed: AdminBed;
beforeAll(async () => {
  bed = await startAdminBed();
});
afterAll(() => bed.close());

const get = (path: string, token = ALICE) => rawRequest(`${bed.service.url}${path}`, { headers: { host: 'a.example', authorization: `Bearer ${token}` } });
const blobs = () => blobFiles(bed.service);

describe('quarantine', () => {
  test('one request hides media on the client, legacy and thumbnail endpoints; unquarantine brings it back', async () => {
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c33' } }).png().toBuffer();
    const { serverName, mediaId } = await uploadAs(bed.service, ALICE, png, 'image/png');
    const paths = [
      `/_matrix/client/v1/media/download/${serverName}/${mediaId}`,
      `/_matrix/media/v3/download/${serverName}/${mediaId}`,
      `/_matrix/client/v1/media/thumbnail/${serverName}/${mediaId}?width=32&height=32&method=crop`,
    ];
    for (const path of paths) expect((await get(path)).status).toBe(200);
    const res = await adminCall(bed.service, 'POST', `/quarantine/${serverName}/${mediaId}`, AMY);
    expect([res.status, res.json()]).toEqual([200, { num_quarantined: 1 }]);
    for (const path of paths) {
      const hidden = await get(path);
      expect([path, hidden.status, hidden.json().errcode]).toEqual([path, 404, 'M_NOT_FOUND']);
    }
    // The bytes stay, as evidence.
    expect(await blobs()).toContain(sha256Hex(png));
    const audit = (await adminCall(bed.service, 'GET', '/audit', AMY)).json().entries as Array<Record<string, unknown>>;
    expect(audit[0]).toMatchObject({ actor: '@amy:a.example', scope: 'a.example', action: 'quarantine', target: `mxc://${serverName}/${mediaId}`, count: 1 });
    expect((await adminCall(bed.service, 'POST', `/unquarantine/${serverName}/${mediaId}`, AMY)).json()).toEqual({ num_unquarantined: 1 });
    for (const path of paths) expect((await get(path)).status).toBe(200);
  });

  test('a user\'s and a server\'s media at once', async () => {
    const mine = [await uploadAs(bed.service, ALICE, 'q-user-1'), await uploadAs(bed.service, ALICE, 'q-user-2')];
    const count = Number((await bed.service.services.db.knex('media').where({ user_id: '@alice:a.example' }).count({ c: '*' }))[0]!.c);
    expect((await adminCall(bed.service, 'POST', '/quarantine/user/@alice:a.example', AMY)).json()).toEqual({ num_quarantined: count });
    for (const m of mine) expect((await downloadAs(bed.service, ALICE, m.serverName, m.mediaId)).status).toBe(404);
    expect((await adminCall(bed.service, 'POST', '/unquarantine/user/@alice:a.example', AMY)).json()).toEqual({ num_unquarantined: count });
    await cacheRemote(bed.service, 'evil.test', 'x1', 'evil one');
    await cacheRemote(bed.service, 'evil.test', 'x2', 'evil two');
    expect((await adminCall(bed.service, 'POST', '/quarantine/server/evil.test', ROOT)).json()).toEqual({ num_quarantined: 2 });
    expect((await downloadAs(bed.service, CAROL, 'evil.test', 'x1')).status).toBe(404);
  });
});

describe('purge', () => {
  test('one media: rows, thumbnails and bytes go; bytes another row shares stay until it goes too', async () => {
    const png = await sharp({ create: { width: 40, height: 40, channels: 3, background: '#3c3' } }).png().toBuffer();
    const first = await uploadAs(bed.service, ALICE, png, 'image/png');
    const second = await uploadAs(bed.service, ALICE, png, 'image/png');
    expect((await get(`/_matrix/client/v1/media/thumbnail/${first.serverName}/${first.mediaId}?width=32&height=32&method=crop`)).status).toBe(200);
    const thumbSha = (await bed.service.services.db.knex('thumbnails').where({ media_id: first.mediaId }).first()).sha256 as string;
    const dry = await adminCall(bed.service, 'POST', `/purge/${first.serverName}/${first.mediaId}?dry_run=true`, AMY);
    expect(dry.json()).toMatchObject({ dry_run: true, count: 1 });
    expect(Number(dry.json().bytes)).toBeGreaterThan(png.length);
    expect(await mediaRow(bed.service, first.serverName, first.mediaId)).toBeDefined();
    const res = await adminCall(bed.service, 'POST', `/purge/${first.serverName}/${first.mediaId}`, AMY);
    expect(res.json()).toEqual({ purged: true, count: 1, bytes: dry.json().bytes, affected: [first.mxc] });
    expect(await mediaRow(bed.service, first.serverName, first.mediaId)).toBeUndefined();
    expect(await bed.service.services.db.knex('thumbnails').where({ media_id: first.mediaId })).toEqual([]);
    expect(await blobs()).not.toContain(thumbSha);
    expect(await blobs()).toContain(sha256Hex(png));
    expect((await downloadAs(bed.service, ALICE, first.serverName, first.mediaId)).status).toBe(404);
    await adminCall(bed.service, 'POST', `/purge/${second.serverName}/${second.mediaId}`, AMY);
    expect(await blobs()).not.toContain(sha256Hex(png));
    const again = await adminCall(bed.service, 'POST', `/purge/${second.serverName}/${second.mediaId}`, AMY);
    expect([again.status, again.json().errcode]).toEqual([404, 'M_NOT_FOUND']);
  });

  test('a user\'s media before a time, a remote server\'s, remote media by download time and by last access', async () => {
    const knex = bed.service.services.db.knex;
    const old = await uploadAs(bed.service, CAROL, 'carol old');
    await knex('media').where({ media_id: old.mediaId }).update({ created_ts: 1000 });
    const recent = await uploadAs(bed.service, CAROL, 'carol recent');
    const byUser = await adminCall(bed.service, 'POST', '/purge/user/@carol:b.example?before_ts=2000', ROOT);
    expect(byUser.json()).toMatchObject({ purged: true, count: 1, affected: [old.mxc] });
    expect(await mediaRow(bed.service, recent.serverName, recent.mediaId)).toBeDefined();

    for (const id of ['s1', 's2']) await cacheRemote(bed.service, 'gone.test', id, `gone ${id}`);
    expect((await adminCall(bed.service, 'POST', '/purge/server/gone.test', ROOT)).json()).toMatchObject({ count: 2 });
    expect(await blobs()).not.toContain(sha256Hex('gone s1'));

    await cacheRemote(bed.service, 'cache.test', 'stale', 'stale bytes');
    await cacheRemote(bed.service, 'cache.test', 'fresh', 'fresh bytes');
    await knex('media').where({ server_name: 'cache.test' }).update({ stored_ts: 5000, last_access_ts: null });
    expect((await downloadAs(bed.service, ALICE, 'cache.test', 'fresh')).status).toBe(200);
    await bed.service.services.admin.accessTimes.flush();
    expect((await mediaRow(bed.service, 'cache.test', 'fresh')).last_access_ts).toBeGreaterThan(5000);
    const old2 = await adminCall(bed.service, 'POST', '/purge/old?before_ts=6000', ROOT);
    expect(old2.json()).toMatchObject({ count: 1, affected: ['mxc://cache.test/stale'] });
    const remote = await adminCall(bed.service, 'POST', `/purge/remote?before_ts=${Date.now() + 1000}`, ROOT);
    expect(remote.json().affected).toContain('mxc://cache.test/fresh');
    expect(await knex('media').where({ is_remote: true })).toEqual([]);
  });

  test('a purge as a background task: progress and result through the tasks API', async () => {
    for (let i = 0; i < 5; i++) await cacheRemote(bed.service, 'bulk.test', `m${i}`, `bulk ${i}`);
    const started = await adminCall(bed.service, 'POST', '/purge/server/bulk.test?background=true', ROOT);
    expect(started.json()).toMatchObject({ count: 5 });
    const id = Number(started.json().task_id);
    let task: Record<string, unknown> = {};
    for (let i = 0; i < 100 && task.is_finished !== true; i++) {
      await new Promise((r) => setTimeout(r, 50));
      task = (await adminCall(bed.service, 'GET', `/tasks/${id}`, ROOT)).json();
    }
    expect(task).toMatchObject({ task_id: id, task_name: 'purge_media', is_finished: true, error_message: '', progress: { total: 5, done: 5 }, result: { count: 5 } });
    expect((await adminCall(bed.service, 'GET', '/tasks/unfinished', ROOT)).json()).toEqual([]);
    expect(await blobs()).not.toContain(sha256Hex('bulk 0'));
  });

  test('bad parameters are Matrix errors and change nothing', async () => {
    const before = await blobs();
    const cases: Array<[string, number, string]> = [
      ['/purge/remote', 400, 'M_MISSING_PARAM'],
      ['/purge/remote?before_ts=yesterday', 400, 'M_INVALID_PARAM'],
      ['/purge/user/alice?before_ts=1', 400, 'M_INVALID_PARAM'],
      ['/purge/old?include_local=maybe', 400, 'M_INVALID_PARAM'],
      ['/quarantine/room/!room:a.example', 400, 'M_UNRECOGNIZED'],
      ['/quarantine/a.example/bad%20id', 400, 'M_INVALID_PARAM'],
    ];
    for (const [path, status, errcode] of cases) {
      const res = await adminCall(bed.service, 'POST', path, ROOT);
      expect([path, res.status, res.json().errcode]).toEqual([path, status, errcode]);
    }
    expect((await adminCall(bed.service, 'GET', '/purge/remote', ROOT)).status).toBe(405);
    expect(await blobs()).toEqual(before);
  });
});

describe('usage', () => {
  test('per homeserver, per user, biggest users first, and a user\'s media page by page', async () => {
    await uploadAs(bed.service, ALICE, 'u'.repeat(300));
    await uploadAs(bed.service, AMY, 'a'.repeat(50));
    const server = (await adminCall(bed.service, 'GET', '/usage/a.example', AMY)).json();
    expect(server.raw_counts).toMatchObject({ media: expect.any(Number), thumbnails: expect.any(Number) });
    const users = (await adminCall(bed.service, 'GET', '/usage/a.example/users?user_id=@amy:a.example', AMY)).json();
    expect(Object.keys(users)).toEqual(['@amy:a.example']);
    expect(users['@amy:a.example']).toMatchObject({ raw_bytes: { total: 50, media: 50 }, raw_counts: { total: 1, media: 1 } });
    const stats = (await adminCall(bed.service, 'GET', '/usage/a.example/users-stats?order_by=media_length&dir=b&limit=1', AMY)).json();
    expect(stats).toMatchObject({ total: 2, next_token: 1, users: [{ user_id: '@alice:a.example', displayname: '@alice:a.example' }] });
    const page1 = (await adminCall(bed.service, 'GET', '/users/@alice:a.example/media?limit=2', AMY)).json();
    const page2 = (await adminCall(bed.service, 'GET', `/users/@alice:a.example/media?limit=2&from=${String(page1.next_token)}`, AMY)).json();
    expect((page1.media as unknown[]).length).toBe(2);
    expect(page1.total).toBe(page2.total);
    const ids = [...(page1.media as Array<{ media_id: string }>), ...(page2.media as Array<{ media_id: string }>)].map((m) => m.media_id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
