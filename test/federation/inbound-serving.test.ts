// Inbound federation requests that are served: Synapse-signed downloads and thumbnails (multipart/mixed), every accepted signing scheme and key source, and key fetching under load.
import { Readable } from 'node:stream';
import sharp from 'sharp';
import { readMultipartMixed } from '../../src/matrix/multipart-reader.js';
import {
  CONTENT, DOWNLOAD, errcodeOf, IMAGE_ID, k1, k2, keyServers, kUnpublished, logLines, notary, OTHER_TENANT_MEDIA_ID, send, service, sign, sReq,
  UNSTABLE_DOWNLOAD, useInboundPeers, type Received,
} from '../helpers/inbound-peers.js';
import { V2 } from '../helpers/key-server.js';
import { collect } from '../helpers/streams.js';
import { describeWithPython } from '../helpers/python-available.js';

useInboundPeers();

async function parseMedia(received: Received) {
  const contentType = received.headers['content-type']!;
  const part = await readMultipartMixed(Readable.from([received.body]), contentType);
  return { ...part, bytes: await collect(part.body) };
}

describeWithPython('serving local media to authenticated servers', () => {
  test('a Synapse-signed X-Matrix download gets multipart/mixed: {} then the bytes, streamed with type and disposition', async () => {
    const received = await send({ authorization: await sign() });
    expect(received.status).toBe(200);
    const contentType = received.headers['content-type']!;
    const boundary = /^multipart\/mixed; boundary=([^";]+)$/.exec(contentType)?.[1];
    expect(boundary).toBeDefined();
    // Leading CRLF, then the JSON part exactly as the spec describes it.
    expect(received.body.subarray(0, 2).toString()).toBe('\r\n');
    expect(received.body.toString('latin1')).toMatch(new RegExp(`^\\r\\n--${boundary}\\r\\nContent-Type: application/json\\r\\n\\r\\n\\{\\}\\r\\n--${boundary}\\r\\n`));
    const media = await parseMedia(received);
    expect(media.metadata).toEqual({});
    expect(media.headers['content-type']).toBe('text/plain');
    expect(media.headers['content-disposition']).toMatch(/^inline; filename="notes\.txt"/);
    expect(media.location).toBeUndefined();
    expect(media.bytes.equals(CONTENT)).toBe(true);
  });

  test('the access log names the remote server and the homeserver, never the signature', async () => {
    const authorization = await sign();
    const before = logLines.length;
    expect((await send({ authorization })).status).toBe(200);
    await new Promise((resolve) => setImmediate(resolve));
    const lines = logLines.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.logger === 'access');
    expect(lines).toEqual([expect.objectContaining({ method: 'GET', family: 'federation', homeserver: 'hs.test', remoteServer: 'peer.test', status: 200 })]);
    const signature = /sig="([^"]+)"/.exec(authorization[0]!)![1]!;
    expect(logLines.join('\n')).not.toContain(signature);
  });

  test('the unstable MSC3916 path serves the same', async () => {
    const received = await send({ path: UNSTABLE_DOWNLOAD, authorization: await sign({ uri: UNSTABLE_DOWNLOAD }) });
    expect(received.status).toBe(200);
    expect((await parseMedia(received)).bytes.equals(CONTENT)).toBe(true);
  });

  test('the signed uri includes the query string, which reaches the handler (timeout_ms)', async () => {
    const uri = `${DOWNLOAD}?timeout_ms=5000`;
    expect((await send({ path: uri, authorization: await sign({ uri }) })).status).toBe(200);
  });

  test.each([
    ['/_matrix/federation/v1/media/thumbnail'],
    ['/_matrix/federation/unstable/org.matrix.msc3916.v2/media/thumbnail'],
  ])('%s serves a thumbnail of a configured size in the same multipart form', async (prefix) => {
    const uri = `${prefix}/${IMAGE_ID}?width=32&height=32&method=crop`;
    const received = await send({ path: uri, authorization: await sign({ uri }) });
    expect(received.status).toBe(200);
    const media = await parseMedia(received);
    expect(media.metadata).toEqual({});
    expect(media.headers['content-type']).toMatch(/^image\/(png|jpeg|webp)$/);
    const metadata = await sharp(media.bytes).metadata();
    // 32x32 crop is one of the spec's recommended sizes, which are the configured defaults.
    expect([metadata.width, metadata.height]).toEqual([32, 32]);
  });

  test('a request signed by two keys (one header each, as Synapse sends) passes when both verify', async () => {
    const headers = await sign({ keys: [k1, k2] });
    expect(headers).toHaveLength(2);
    expect((await send({ authorization: headers })).status).toBe(200);
  });

  test('the Host may be an extra hostname of the homeserver, with a port', async () => {
    expect((await send({ host: 'matrix.hs.test:8448', authorization: await sign() })).status).toBe(200);
    expect((await send({ host: 'hs.test:443', authorization: await sign() })).status).toBe(200);
  });

  test('an old sender without destination is served the media of the homeserver its Host names', async () => {
    const headers = await sign({ legacyHeader: true });
    expect(headers[0]).not.toContain('destination');
    expect((await send({ authorization: headers })).status).toBe(200);
  });

  test('X-MSC4100-Scoped with an m.requests key, alone or beside a valid X-Matrix', async () => {
    const scoped = await sign({ keys: [sReq], scheme: 'X-MSC4100-Scoped' });
    expect(scoped[0]).toMatch(/^X-MSC4100-Scoped origin="peer\.test",key="ed25519:sreq",sig="/);
    expect((await send({ authorization: scoped })).status).toBe(200);
    expect((await send({ authorization: [...(await sign()), ...scoped] })).status).toBe(200);
  });

  test("MSC4100's stable scheme X-Matrix-Scoped is verified like the unstable one", async () => {
    const stable = (await sign({ keys: [sReq], scheme: 'X-MSC4100-Scoped' })).map((h) => h.replace(/^X-MSC4100-Scoped /, 'X-Matrix-Scoped '));
    expect((await send({ authorization: stable })).status).toBe(200);
    const unscoped = (await sign({ keys: [k1], scheme: 'X-MSC4100-Scoped' })).map((h) => h.replace(/^X-MSC4100-Scoped /, 'X-Matrix-Scoped '));
    const refused = await send({ authorization: unscoped });
    expect([refused.status, errcodeOf(refused)]).toEqual([401, 'M_UNAUTHORIZED']);
  });

  test('the media of each homeserver goes to requests addressed to it', async () => {
    const path = `/_matrix/federation/v1/media/download/${OTHER_TENANT_MEDIA_ID}`;
    const received = await send({ path, host: 'other-hs.test', authorization: await sign({ uri: path, destination: 'other-hs.test' }) });
    expect(received.status).toBe(200);
    expect((await parseMedia(received)).bytes.equals(CONTENT)).toBe(true);
  });

  test('keys only a notary can give are fetched from it and accepted', async () => {
    const received = await send({ authorization: await sign({ origin: 'vianotary.test' }) });
    expect(received.status).toBe(200);
    expect(notary.requests.some((r) => JSON.stringify(r.body).includes('vianotary.test'))).toBe(true);
  });

  test('an allowed origin is served by a homeserver with allow/deny lists', async () => {
    const received = await send({ host: 'guarded.test', authorization: await sign({ origin: 'good.friends.test', destination: 'guarded.test' }) });
    expect(received.status).toBe(200);
  });

  test('a datastore that redirects makes the second part a Location with an empty body', async () => {
    const storage = service.services.datastores.get('default') as { redirectUrl?: (sha256: string) => Promise<string | undefined> };
    const before = storage.redirectUrl;
    storage.redirectUrl = async (sha256) => `https://cdn.example/${sha256}?sig=abc`;
    try {
      const received = await send({ authorization: await sign() });
      expect(received.status).toBe(200);
      const media = await parseMedia(received);
      expect(media.location).toMatch(/^https:\/\/cdn\.example\/[0-9a-f]{64}\?sig=abc$/);
      expect(media.bytes.length).toBe(0);
    } finally {
      storage.redirectUrl = before;
    }
  });
});

describeWithPython('key fetching under load', () => {
  test('concurrent requests from a new origin share one key fetch; unknown keys do not refetch within the interval', async () => {
    const keyServer = keyServers.get('burst.test')!;
    keyServer.delayMs = 300;
    const headers = await sign({ origin: 'burst.test' });
    const results = await Promise.all(Array.from({ length: 20 }, () => send({ authorization: headers })));
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(keyServer.count(V2)).toBe(1);

    const unknown = await sign({ origin: 'burst.test', keys: [kUnpublished] });
    for (let i = 0; i < 5; i++) {
      const received = await send({ authorization: unknown });
      expect([received.status, errcodeOf(received)]).toEqual([401, 'M_UNAUTHORIZED']);
    }
    expect(keyServer.count(V2)).toBe(1);
  });

  test('denied origins are refused before any key fetch', async () => {
    await send({ host: 'guarded.test', authorization: await sign({ origin: 'bad.friends.test', destination: 'guarded.test' }) });
    expect(keyServers.get('bad.friends.test')!.count(V2)).toBe(0);
  });
});
