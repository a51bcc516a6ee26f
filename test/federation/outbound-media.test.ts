// Outbound fetches by the signed client, checked by Synapse's signedjson: media over federation, via Location parts and legacy endpoints, and server keys.
import { RemoteHttpError } from '../../src/federation/client.js';
import { UpstreamError } from '../../src/federation/http.js';
import { fetchRemoteMedia } from '../../src/federation/media.js';
import { fileNameFromContentDisposition } from '../../src/matrix/content-disposition.js';
import { createTestFederationClient } from '../helpers/federation-client.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { cdn, client, key, legacyRemote, remote, REMOTE, request, TENANT, useOutboundPeers } from '../helpers/outbound-peers.js';
import type { MultipartStyle } from '../helpers/remote-homeserver.js';
import { collect, failure } from '../helpers/streams.js';
import { describeWithPython } from '../helpers/python-available.js';

useOutboundPeers();

describeWithPython('signed federation download', () => {
  test('signs with X-MSC4100-Scoped for a scoped key, verified by signedjson, and streams the media part', async () => {
    const bytes = patternBytes(200_000);
    remote.media.set('plain', { kind: 'multipart', bytes, contentType: 'image/png', disposition: 'inline; filename="cat.png"' });
    const media = await fetchRemoteMedia(client, request('plain'));
    expect(media.via).toBe('federation');
    expect(media.contentType).toBe('image/png');
    expect(fileNameFromContentDisposition(media.contentDisposition)).toBe('cat.png');
    expect((await collect(media.body)).equals(bytes)).toBe(true);
    const [seen] = remote.requestsFor('/_matrix/federation/v1/media/download/plain');
    expect(seen!.path).toBe('/_matrix/federation/v1/media/download/plain?timeout_ms=5000');
    expect(seen!.authorization).toHaveLength(1);
    expect(seen!.verdict).toEqual({ ok: true, origin: TENANT, key: key.keyId, scheme: 'X-MSC4100-Scoped' });
  });

  test('a key without the m.requests scope signs plain X-Matrix', async () => {
    const legacyKeyed = createTestFederationClient({ keys: { [TENANT]: { ...key, scope: [] } }, overrides: { [REMOTE]: remote.url }, allowlist: ['127.0.0.1/32'] });
    remote.media.set('unscoped', { kind: 'multipart', bytes: Buffer.from('hello') });
    const media = await fetchRemoteMedia(legacyKeyed.client, request('unscoped'));
    expect((await collect(media.body)).toString()).toBe('hello');
    expect(remote.requestsFor('/_matrix/federation/v1/media/download/unscoped')[0]!.verdict).toMatchObject({ ok: true, scheme: 'X-Matrix' });
    legacyKeyed.client.close();
  });

  test('MSC4100 downgrade: a server that refuses X-MSC4100-Scoped gets X-Matrix once, then directly', async () => {
    legacyRemote.media.set('a', { kind: 'multipart', bytes: Buffer.from('first') });
    legacyRemote.media.set('b', { kind: 'multipart', bytes: Buffer.from('second') });
    const first = await fetchRemoteMedia(client, request('a', { serverName: 'legacy.test' }));
    expect((await collect(first.body)).toString()).toBe('first');
    const tries = legacyRemote.requestsFor('/_matrix/federation/v1/media/download/a');
    expect(tries.map((r) => r.authorization[0]!.split(' ')[0])).toEqual(['X-MSC4100-Scoped', 'X-Matrix']);
    expect(tries.map((r) => r.verdict?.ok)).toEqual([false, true]);

    const second = await fetchRemoteMedia(client, request('b', { serverName: 'legacy.test' }));
    expect((await collect(second.body)).toString()).toBe('second');
    const direct = legacyRemote.requestsFor('/_matrix/federation/v1/media/download/b');
    expect(direct).toHaveLength(1);
    expect(direct[0]!.verdict).toMatchObject({ ok: true, scheme: 'X-Matrix' });
  });

  test('a 403 that is not about authentication is not retried', async () => {
    remote.media.set('forbidden', { kind: 'error', status: 403, body: { errcode: 'M_LIMIT_EXCEEDED', error: 'no' } });
    const error = await failure(fetchRemoteMedia(client, request('forbidden')));
    expect(error).toBeInstanceOf(RemoteHttpError);
    expect((error as RemoteHttpError).status).toBe(403);
    expect(remote.requestsFor('/_matrix/federation/v1/media/download/forbidden')).toHaveLength(1);
  });

  test.each<MultipartStyle>(['strict', 'lf', 'msc-example', 'preamble', 'quoted-boundary', 'header-case'])('reads the %s multipart style', async (style) => {
    const bytes = patternBytes(70_000, style.length);
    remote.media.set(`style-${style}`, { kind: 'multipart', bytes, contentType: 'video/mp4', style, chunkSize: 997 });
    const media = await fetchRemoteMedia(client, request(`style-${style}`));
    expect(media.contentType).toBe('video/mp4');
    expect((await collect(media.body)).equals(bytes)).toBe(true);
  });

  test('thumbnails use the federation thumbnail endpoint with the size in the signed URI', async () => {
    const thumbnail = patternBytes(3000, 9);
    remote.media.set('pic', { kind: 'multipart', bytes: patternBytes(10), thumbnail: { bytes: thumbnail, contentType: 'image/jpeg' } });
    const media = await fetchRemoteMedia(client, request('pic', { thumbnail: { width: 96, height: 64, method: 'crop', animated: false } }));
    expect(media.contentType).toBe('image/jpeg');
    expect((await collect(media.body)).equals(thumbnail)).toBe(true);
    const [seen] = remote.requestsFor('/_matrix/federation/v1/media/thumbnail/pic');
    expect(seen!.path).toBe('/_matrix/federation/v1/media/thumbnail/pic?width=96&height=64&method=crop&timeout_ms=5000');
    expect(seen!.verdict).toMatchObject({ ok: true });
  });

  test('404 M_NOT_FOUND is final: no legacy request', async () => {
    remote.media.set('gone', { kind: 'error', status: 404, body: { errcode: 'M_NOT_FOUND', error: 'Not found' } });
    const error = await failure(fetchRemoteMedia(client, request('gone')));
    expect(error).toBeInstanceOf(RemoteHttpError);
    expect((error as RemoteHttpError).errcode).toBe('M_NOT_FOUND');
    expect(remote.requestsFor('/_matrix/media/v3/')).toHaveLength(0);
  });
});

describeWithPython('Location parts', () => {
  test('an absolute Location is fetched from the other server, without credentials', async () => {
    const bytes = patternBytes(50_000, 3);
    cdn.files.set('/blob/abs', { headers: { 'Content-Type': 'image/webp', 'Content-Disposition': 'attachment; filename="far.webp"' }, body: bytes });
    remote.media.set('abs', { kind: 'location', location: `${cdn.url}/blob/abs?sig=1` });
    const media = await fetchRemoteMedia(client, request('abs'));
    expect(media.via).toBe('federation-location');
    expect(media.contentType).toBe('image/webp');
    expect(fileNameFromContentDisposition(media.contentDisposition)).toBe('far.webp');
    expect((await collect(media.body)).equals(bytes)).toBe(true);
    expect(cdn.requestsFor('/blob/abs')[0]!.authorization).toEqual([]);
  });

  test('a relative Location resolves against the request URL (same server, no credentials)', async () => {
    remote.files.set('/cdn/rel', { headers: { 'Content-Type': 'text/plain' }, body: Buffer.from('relative') });
    remote.media.set('rel', { kind: 'location', location: '/cdn/rel' });
    const media = await fetchRemoteMedia(client, request('rel'));
    expect((await collect(media.body)).toString()).toBe('relative');
    expect(remote.requestsFor('/cdn/rel')[0]!.authorization).toEqual([]);
  });

  test('redirects after a Location are followed up to 5 hops; more, or a loop, fail', async () => {
    for (let i = 0; i < 5; i++) cdn.files.set(`/hop/${i}`, { status: 302, headers: { Location: `/hop/${i + 1}` } });
    cdn.files.set('/hop/5', { headers: { 'Content-Type': 'text/plain' }, body: Buffer.from('five hops') });
    remote.media.set('hops', { kind: 'location', location: `${cdn.url}/hop/0` });
    expect((await collect((await fetchRemoteMedia(client, request('hops'))).body)).toString()).toBe('five hops');

    remote.media.set('too-many', { kind: 'location', location: `${cdn.url}/hop/-1` });
    cdn.files.set('/hop/-1', { status: 307, headers: { Location: '/hop/0' } });
    expect((await failure(fetchRemoteMedia(client, request('too-many')))).message).toMatch(/more than 5 redirects/);

    cdn.files.set('/loop/a', { status: 302, headers: { Location: '/loop/b' } });
    cdn.files.set('/loop/b', { status: 302, headers: { Location: '/loop/a' } });
    remote.media.set('loop', { kind: 'location', location: `${cdn.url}/loop/a` });
    expect((await failure(fetchRemoteMedia(client, request('loop')))).message).toMatch(/redirect loop/);
  });

  test('the Location target is size-limited like the media itself', async () => {
    cdn.files.set('/blob/big', { headers: { 'Content-Type': 'image/png' }, body: patternBytes(5000) });
    cdn.files.set('/blob/big-declared', { headers: { 'Content-Type': 'image/png', 'Content-Length': '5000' }, body: patternBytes(5000) });
    remote.media.set('big-declared-location', { kind: 'location', location: `${cdn.url}/blob/big-declared` });
    const declared = await failure(fetchRemoteMedia(client, request('big-declared-location', { maxBytes: 4999 })));
    expect((declared as UpstreamError).kind).toBe('too-large');
    remote.media.set('big-location', { kind: 'location', location: `${cdn.url}/blob/big` });
    const error = await failure(fetchRemoteMedia(client, request('big-location', { maxBytes: 4999 })).then((media) => collect(media.body)));
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).kind).toBe('too-large');
  });
});

describeWithPython('legacy fallback', () => {
  test.each([
    ['404 M_UNRECOGNIZED', 'json'],
    ['405 M_UNRECOGNIZED', '405'],
    ['404 without JSON', 'html'],
  ] as const)('%s falls back to /_matrix/media/v3/download with allow_remote=false', async (_what, unrecognized) => {
    const id = `old-${unrecognized}`;
    remote.media.set(id, { kind: 'legacy-only', bytes: Buffer.from('old school'), contentType: 'text/plain', disposition: 'attachment; filename*=utf-8\'\'na%C3%AFve.txt', unrecognized });
    const media = await fetchRemoteMedia(client, request(id));
    expect(media.via).toBe('legacy');
    expect(media.contentType).toBe('text/plain');
    expect(fileNameFromContentDisposition(media.contentDisposition)).toBe('naïve.txt');
    expect((await collect(media.body)).toString()).toBe('old school');
    const [legacy] = remote.requestsFor(`/_matrix/media/v3/download/${REMOTE}/${id}`);
    expect(new URL(legacy!.path, 'http://x').searchParams.get('allow_remote')).toBe('false');
    expect(new URL(legacy!.path, 'http://x').searchParams.get('allow_redirect')).toBe('true');
    expect(legacy!.authorization).toEqual([]);
  });

  test('a legacy redirect (allow_redirect=true) is followed', async () => {
    cdn.files.set('/legacy-cdn', { headers: { 'Content-Type': 'image/gif' }, body: Buffer.from('GIF89a') });
    remote.media.set('old-redirect', { kind: 'legacy-only', bytes: Buffer.alloc(0), redirectTo: `${cdn.url}/legacy-cdn` });
    const media = await fetchRemoteMedia(client, request('old-redirect'));
    expect(media.contentType).toBe('image/gif');
    expect((await collect(media.body)).toString()).toBe('GIF89a');
  });

  test('legacy thumbnails carry the size', async () => {
    remote.media.set('old-thumb', { kind: 'legacy-only', bytes: Buffer.from('thumb'), contentType: 'image/png' });
    await collect((await fetchRemoteMedia(client, request('old-thumb', { thumbnail: { width: 32, height: 32, method: 'scale', animated: true } }))).body);
    const [legacy] = remote.requestsFor(`/_matrix/media/v3/thumbnail/${REMOTE}/old-thumb`);
    const query = new URL(legacy!.path, 'http://x').searchParams;
    expect(Object.fromEntries(query)).toEqual({ width: '32', height: '32', method: 'scale', animated: 'true', allow_remote: 'false', allow_redirect: 'true', timeout_ms: '5000' });
  });

  test('a homeserver without a key goes to the legacy endpoint only, and says so', async () => {
    remote.media.set('keyless', { kind: 'legacy-only', bytes: Buffer.from('no key') });
    const noticed: string[] = [];
    const media = await fetchRemoteMedia(client, request('keyless', { origin: 'keyless.test', onNoSigningKey: (origin) => noticed.push(origin) }));
    expect((await collect(media.body)).toString()).toBe('no key');
    expect(noticed).toEqual(['keyless.test']);
    expect(remote.requestsFor('/_matrix/federation/v1/media/download/keyless')).toHaveLength(0);
  });
});

describeWithPython('key fetching for the keyring', () => {
  test('fetchServerKeysJson GETs the path on the server, unsigned', async () => {
    remote.files.set('/_matrix/key/v2/server', { headers: { 'Content-Type': 'application/json' }, body: Buffer.from('{"server_name":"remote.test"}') });
    await expect(client.fetchServerKeysJson(REMOTE, '/_matrix/key/v2/server')).resolves.toEqual({ server_name: 'remote.test' });
    expect(remote.requestsFor('/_matrix/key/v2/server')[0]!.authorization).toEqual([]);
  });

  test('a non-2xx answer and an oversized one are errors', async () => {
    remote.files.set('/_matrix/key/v2/missing', { status: 404, headers: { 'Content-Type': 'application/json' }, body: Buffer.from('{"errcode":"M_NOT_FOUND"}') });
    await expect(client.fetchServerKeysJson(REMOTE, '/_matrix/key/v2/missing')).rejects.toThrow(RemoteHttpError);
    remote.files.set('/_matrix/key/v2/huge', { headers: { 'Content-Type': 'application/json' }, body: Buffer.from(`{"x":"${'a'.repeat(1024 * 1024)}"}`) });
    await expect(client.fetchServerKeysJson(REMOTE, '/_matrix/key/v2/huge')).rejects.toThrow(/larger than/);
  });

  test('queryNotary POSTs the body to the notary URL, or to the notary found by discovery', async () => {
    remote.files.set('/_matrix/key/v2/query', { headers: { 'Content-Type': 'application/json' }, body: Buffer.from('{"server_keys":[]}') });
    const viaUrl = await client.queryNotary({ serverName: 'notary.test', verifyKeys: {}, url: remote.url }, { server_keys: { 'a.test': {} } }, '/_matrix/key/v2/query');
    const viaDiscovery = await client.queryNotary({ serverName: REMOTE, verifyKeys: {} }, { server_keys: {} }, '/_matrix/key/v2/query');
    expect(viaUrl).toEqual({ server_keys: [] });
    expect(viaDiscovery).toEqual({ server_keys: [] });
    expect(remote.requestsFor('/_matrix/key/v2/query').map((r) => r.method)).toEqual(['POST', 'POST']);
  });
});
