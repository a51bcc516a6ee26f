// Inbound federation requests that are refused: bad signatures and keys, wrong destination or Host, allow/deny lists, malformed headers, nothing to serve.
import {
  DOWNLOAD, errcodeOf, k1, k2, kOld, kUnpublished, MEDIA_ID, OTHER_TENANT_MEDIA_ID, otherKey, REMOTE_MEDIA_ID, send, sEvents, sign, sReq,
  UNSTABLE_DOWNLOAD, useInboundPeers, type Sent,
} from '../helpers/inbound-peers.js';
import { describeWithPython } from '../helpers/python-available.js';

useInboundPeers();

function tamper(headers: string[]): string[] {
  return headers.map((h) => h.replace(/sig="(.)/, (_m, c: string) => `sig="${c === 'A' ? 'B' : 'A'}`));
}


type Variant = [title: string, make: () => Promise<Sent>, status: number, errcode: string];

const header = (params: string) => async (): Promise<Sent> => ({ authorization: [`X-Matrix ${params}`] });
const validSig = async () => /sig="([^"]+)"/.exec((await sign())[0]!)![1]!;
const withValid = (make: (sig: string) => string) => async (): Promise<Sent> => ({ authorization: [make(await validSig())] });

const hostile: Variant[] = [
  // Signatures that must not verify.
  ['a tampered signature', async () => ({ authorization: tamper(await sign()) }), 401, 'M_UNAUTHORIZED'],
  ['a signature by another key under the key id', async () => ({ authorization: await sign({ keys: [{ ...k2, keyId: k1.keyId, version: k1.version }] }) }), 401, 'M_UNAUTHORIZED'],
  ['a signature by another server\'s key claiming the origin', async () => ({ authorization: await sign({ keys: [{ ...otherKey, keyId: k1.keyId, version: k1.version }] }) }), 401, 'M_UNAUTHORIZED'],
  ['two keys, the second signature tampered', async () => {
    const [a, b] = await sign({ keys: [k1, k2] });
    return { authorization: [a!, ...tamper([b!])] };
  }, 401, 'M_UNAUTHORIZED'],
  ['a valid signature beside one by an unknown algorithm', async () => ({ authorization: [...(await sign()), 'X-Matrix origin="peer.test",key="curve9:x",sig="AAAA",destination="hs.test"'] }), 401, 'M_UNAUTHORIZED'],
  ['replayed with the destination rewritten to another of our homeservers', async () => ({
    host: 'other-hs.test', authorization: (await sign()).map((h) => h.replace('destination="hs.test"', 'destination="other-hs.test"')),
  }), 401, 'M_UNAUTHORIZED'],
  ['replayed to another homeserver\'s Host', async () => ({ host: 'other-hs.test', authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['replayed on another media id', async () => ({ path: `/_matrix/federation/v1/media/download/${OTHER_TENANT_MEDIA_ID}`, authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['replayed on the thumbnail endpoint', async () => ({ path: `/_matrix/federation/v1/media/thumbnail/${MEDIA_ID}?width=32&height=32`, authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['replayed on the unstable path', async () => ({ path: UNSTABLE_DOWNLOAD, authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['replayed with another query', async () => ({ path: `${DOWNLOAD}?timeout_ms=1`, authorization: await sign({ uri: `${DOWNLOAD}?timeout_ms=5000` }) }), 401, 'M_UNAUTHORIZED'],
  ['replayed with a query added', async () => ({ path: `${DOWNLOAD}?timeout_ms=1`, authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['replayed with the query reordered', async () => ({ path: `${DOWNLOAD}?b=2&a=1`, authorization: await sign({ uri: `${DOWNLOAD}?a=1&b=2` }) }), 401, 'M_UNAUTHORIZED'],
  ['replayed with another method (signed POST)', async () => ({ authorization: await sign({ method: 'POST' }) }), 401, 'M_UNAUTHORIZED'],
  ['signed for HEAD, sent as GET', async () => ({ authorization: await sign({ method: 'HEAD' }) }), 401, 'M_UNAUTHORIZED'],
  ['the same path percent-encoded differently (the raw uri is signed)', async () => ({ path: DOWNLOAD.replace(/3$/, '%33'), authorization: await sign() }), 401, 'M_UNAUTHORIZED'],
  ['a signed uri with scheme and host', async () => ({ authorization: await sign({ uri: `https://hs.test${DOWNLOAD}` }) }), 401, 'M_UNAUTHORIZED'],
  ['signed with a body the GET does not have', async () => ({ authorization: await sign({ content: { a: 1 } }) }), 401, 'M_UNAUTHORIZED'],
  ['signed by peer.test but claiming origin other.test', async () => ({ authorization: (await sign()).map((h) => h.replace('origin="peer.test"', 'origin="other.test"')) }), 401, 'M_UNAUTHORIZED'],
  // Keys that must not be usable.
  ['a key id the origin does not publish', async () => ({ authorization: await sign({ keys: [kUnpublished] }) }), 401, 'M_UNAUTHORIZED'],
  ['a key whose valid_until_ts has passed', async () => ({ authorization: await sign({ origin: 'expired.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a key only in old_verify_keys', async () => ({ authorization: await sign({ keys: [kOld] }) }), 401, 'M_UNAUTHORIZED'],
  ['X-MSC4100-Scoped by a key scoped only for m.events', async () => ({ authorization: await sign({ keys: [sEvents], scheme: 'X-MSC4100-Scoped' }) }), 401, 'M_UNAUTHORIZED'],
  ['X-MSC4100-Scoped by a v2 key without scope', async () => ({ authorization: await sign({ keys: [k1], scheme: 'X-MSC4100-Scoped' }) }), 401, 'M_UNAUTHORIZED'],
  ['X-Matrix by a key published only at the scoped endpoint', async () => ({ authorization: await sign({ keys: [sReq] }) }), 401, 'M_UNAUTHORIZED'],
  ['both schemes, the X-MSC4100-Scoped one tampered', async () => ({ authorization: [...(await sign()), ...tamper(await sign({ keys: [sReq], scheme: 'X-MSC4100-Scoped' }))] }), 401, 'M_UNAUTHORIZED'],
  ['both schemes, the X-Matrix one tampered', async () => ({ authorization: [...tamper(await sign()), ...(await sign({ keys: [sReq], scheme: 'X-MSC4100-Scoped' }))] }), 401, 'M_UNAUTHORIZED'],
  ['both schemes, the scoped one by an unscoped key', async () => ({ authorization: [...(await sign()), ...(await sign({ keys: [k2], scheme: 'X-MSC4100-Scoped' }))] }), 401, 'M_UNAUTHORIZED'],
  ['a key server answering with another server_name', async () => ({ authorization: await sign({ origin: 'liar.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a key server answering with a forged self-signature', async () => ({ authorization: await sign({ origin: 'forger.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a key server answering without self-signature', async () => ({ authorization: await sign({ origin: 'unsigned.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['an origin whose key server is unreachable', async () => ({ authorization: await sign({ origin: 'down.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['keys from a notary whose signature does not verify', async () => ({ authorization: await sign({ origin: 'viabadnotary.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['keys from a notary signed with a key not configured', async () => ({ authorization: await sign({ origin: 'viastranger.test' }) }), 401, 'M_UNAUTHORIZED'],
  // Destination and Host.
  ['a destination that is not served here', async () => ({ authorization: await sign({ destination: 'elsewhere.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a destination differing only in case', async () => ({ authorization: await sign({ destination: 'HS.test' }) }), 401, 'M_UNAUTHORIZED'],
  ['a destination naming an extra hostname, not the server name', async () => ({ authorization: await sign({ destination: 'matrix.hs.test' }) }), 401, 'M_UNAUTHORIZED'],
  // The tenant rule comes first: a Host that names no hosted homeserver is 404, whatever is signed.
  ['a Host that no homeserver has', async () => ({ host: 'unknown.test', authorization: await sign() }), 404, 'M_NOT_FOUND'],
  ['no destination and a Host that no homeserver has', async () => ({ host: 'unknown.test', authorization: await sign({ legacyHeader: true }) }), 404, 'M_NOT_FOUND'],
  ['no destination, signed for one homeserver but sent to another\'s Host', async () => ({ host: 'other-hs.test', authorization: await sign({ legacyHeader: true }) }), 401, 'M_UNAUTHORIZED'],
  // Missing.
  ['no Authorization header', async () => ({}), 401, 'M_UNAUTHORIZED'],
  ['only a Bearer token', async () => ({ authorization: ['Bearer syt_abc'] }), 401, 'M_UNAUTHORIZED'],
  ['only an unknown scheme with X-Matrix params', async () => ({ authorization: (await sign()).map((h) => h.replace('X-Matrix', 'X-Matrix-Scoped')) }), 401, 'M_UNAUTHORIZED'],
  // Malformed.
  ['the scheme alone', header(''), 400, 'M_UNAUTHORIZED'],
  ['no origin', withValid((sig) => `X-Matrix key="ed25519:k1",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['no key', withValid((sig) => `X-Matrix origin="peer.test",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['no sig', header('origin="peer.test",key="ed25519:k1",destination="hs.test"'), 400, 'M_UNAUTHORIZED'],
  ['an origin that is not a server name', withValid((sig) => `X-Matrix origin="peer_test!",key="ed25519:k1",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['an origin with a path', withValid((sig) => `X-Matrix origin="peer.test/x",key="ed25519:k1",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['an empty origin', withValid((sig) => `X-Matrix origin="",key="ed25519:k1",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['a destination that is not a server name', withValid((sig) => `X-Matrix origin="peer.test",key="ed25519:k1",sig="${sig}",destination="hs test"`), 400, 'M_UNAUTHORIZED'],
  ['a duplicate origin param', withValid((sig) => `X-Matrix origin="peer.test",origin="other.test",key="ed25519:k1",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['a duplicate sig param', withValid((sig) => `X-Matrix origin="peer.test",key="ed25519:k1",sig="${sig}",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['a duplicate key param', withValid((sig) => `X-Matrix origin="peer.test",key="ed25519:k1",key="ed25519:k2",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['an unterminated quote', withValid((sig) => `X-Matrix origin="peer.test,key="ed25519:k1",sig="${sig}`), 400, 'M_UNAUTHORIZED'],
  ['params without commas', withValid((sig) => `X-Matrix origin="peer.test" key="ed25519:k1" sig="${sig}"`), 400, 'M_UNAUTHORIZED'],
  ['a param without "="', withValid((sig) => `X-Matrix origin,key="ed25519:k1",sig="${sig}"`), 400, 'M_UNAUTHORIZED'],
  ['a param without value', withValid((sig) => `X-Matrix origin=,key="ed25519:k1",sig="${sig}"`), 400, 'M_UNAUTHORIZED'],
  ['a comma right after the scheme name', withValid((sig) => `X-Matrix,origin="peer.test",key="ed25519:k1",sig="${sig}"`), 400, 'M_UNAUTHORIZED'],
  ['a key that is not algorithm:version', withValid((sig) => `X-Matrix origin="peer.test",key="ed25519",sig="${sig}",destination="hs.test"`), 400, 'M_UNAUTHORIZED'],
  ['a sig that is not Base64', header('origin="peer.test",key="ed25519:k1",sig="!!notbase64!!",destination="hs.test"'), 400, 'M_UNAUTHORIZED'],
  ['a non-ASCII byte in the origin', withValid((sig) => `X-Matrix origin="peer\u00e9.test",key="ed25519:k1",sig="${sig}"`), 400, 'M_UNAUTHORIZED'],
  ['two X-Matrix headers naming different origins', async () => ({ authorization: [...(await sign()), ...(await sign({ origin: 'other.test', keys: [otherKey] }))] }), 400, 'M_UNAUTHORIZED'],
  ['two X-Matrix headers naming different destinations', async () => ({ authorization: [...(await sign()), ...(await sign({ destination: 'other-hs.test', keys: [k2] }))] }), 400, 'M_UNAUTHORIZED'],
  ['two different sigs for one key', async () => ({ authorization: [...(await sign()), ...tamper(await sign())] }), 400, 'M_UNAUTHORIZED'],
  ['X-Matrix and X-MSC4100-Scoped naming different origins', async () => ({
    authorization: [...(await sign()), ...(await sign({ origin: 'other.test', keys: [otherKey], scheme: 'X-MSC4100-Scoped' }))],
  }), 400, 'M_UNAUTHORIZED'],
  // Allow and deny lists of guarded.test.
  ['a denied origin, even though the allow list matches it', async () => ({ host: 'guarded.test', authorization: await sign({ origin: 'bad.friends.test', destination: 'guarded.test' }) }), 403, 'M_FORBIDDEN'],
  ['a denied origin on another port', async () => ({ host: 'guarded.test', authorization: await sign({ origin: 'bad.friends.test:8448', destination: 'guarded.test' }) }), 403, 'M_FORBIDDEN'],
  ['an origin not in the allow list', async () => ({ host: 'guarded.test', authorization: await sign({ origin: 'stranger.test', destination: 'guarded.test' }) }), 403, 'M_FORBIDDEN'],
  ['an origin only resembling an allowed one', async () => ({ host: 'guarded.test', authorization: await sign({ origin: 'friends.test.evil', destination: 'guarded.test' }) }), 403, 'M_FORBIDDEN'],
  // Authenticated, but nothing to serve.
  ['media that does not exist', async () => {
    const path = '/_matrix/federation/v1/media/download/doesNotExist';
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_NOT_FOUND'],
  ['remote media cached here (never served over federation)', async () => {
    const path = `/_matrix/federation/v1/media/download/${REMOTE_MEDIA_ID}`;
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_NOT_FOUND'],
  ['media of another homeserver served here', async () => {
    const path = `/_matrix/federation/v1/media/download/${OTHER_TENANT_MEDIA_ID}`;
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_NOT_FOUND'],
  ['a media id off the grammar', async () => {
    const path = '/_matrix/federation/v1/media/download/bad$id';
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_NOT_FOUND'],
  ['a media id encoding a path traversal', async () => {
    const path = '/_matrix/federation/v1/media/download/..%2F..%2Fetc%2Fpasswd';
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_NOT_FOUND'],
  ['a timeout_ms that is not a number', async () => {
    const path = `${DOWNLOAD}?timeout_ms=soon`;
    return { path, authorization: await sign({ uri: path }) };
  }, 400, 'M_INVALID_PARAM'],
  ['a thumbnail without width', async () => {
    const path = `/_matrix/federation/v1/media/thumbnail/${MEDIA_ID}?height=32`;
    return { path, authorization: await sign({ uri: path }) };
  }, 400, 'M_MISSING_PARAM'],
  // Not an endpoint, or not this method.
  ['an unknown federation media endpoint', async () => {
    const path = `/_matrix/federation/v1/media/upload/${MEDIA_ID}`;
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_UNRECOGNIZED'],
  ['the old MSC3916 form with a server name', async () => {
    const path = `/_matrix/federation/v1/media/download/hs.test/${MEDIA_ID}`;
    return { path, authorization: await sign({ uri: path }) };
  }, 404, 'M_UNRECOGNIZED'],
  ['POST to download', async () => ({ method: 'POST', authorization: await sign({ method: 'POST' }) }), 405, 'M_UNRECOGNIZED'],
  ['DELETE to thumbnail', async () => ({ method: 'DELETE', path: `/_matrix/federation/v1/media/thumbnail/${MEDIA_ID}` }), 405, 'M_UNRECOGNIZED'],
];

describeWithPython(`${hostile.length} hostile or wrong requests are each refused with the right status and errcode`, () => {
  test('there are at least 50 of them', () => {
    expect(hostile.length).toBeGreaterThanOrEqual(50);
  });

  test.each(hostile)('%s', async (_title, make, status, errcode) => {
    const received = await send(await make());
    expect([received.status, errcodeOf(received)]).toEqual([status, errcode]);
    // HTTP requires a 405 to say what is allowed.
    expect(received.headers.allow).toBe(status === 405 ? 'GET, HEAD' : undefined);
  });
});
