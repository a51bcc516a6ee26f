import { buildConfig } from '../../src/config/config.js';
import { Tenants } from '../../src/config/tenants.js';
import { authenticateRequest, originMatches, type KeyLookup } from '../../src/federation/inbound-auth.js';
import { VerifiedRequests } from '../../src/federation/verified-requests.js';
import { createSigner, generateSeed } from '../../src/matrix/ed25519.js';
import { MatrixError } from '../../src/matrix/errors.js';
import { buildAuthorizationHeader, MSC4100_SCOPED_SCHEME, X_MATRIX_SCHEME } from '../../src/matrix/x-matrix.js';
import { failure } from '../helpers/streams.js';

describe('originMatches: allow/deny patterns', () => {
  test.each([
    ['evil.example', 'evil.example', true],
    ['evil.example', 'EVIL.example', true],
    ['evil.example', 'evil.example:8448', true],
    ['evil.example', 'sub.evil.example', false],
    ['evil.example', 'evil.example.com', false],
    ['evil.example', 'notevil.example', false],
    ['evil.example:8448', 'evil.example:8448', true],
    ['evil.example:8448', 'evil.example', false],
    ['evil.example:8448', 'evil.example:443', false],
    ['*.evil.example', 'a.b.evil.example', true],
    ['*.evil.example', 'a.evil.example:8448', true],
    ['*.evil.example', 'evil.example', false],
    ['*.evil.example', 'evil-example', false],
    ['*', 'anything.example', true],
    ['a*c.example', 'abbbc.example', true],
    ['a.c', 'abc', false], // dots are literal, not regex wildcards
    ['[::1]', '[::1]:8448', true],
    ['1.2.3.4', '1.2.3.4:8448', true],
    ['1.2.3.*', '1.2.3.44', true],
    ['(x|y).example', 'x.example', false],
    ['evil.example', 'not a server name', false], // no port to strip: no match, no exception
  ])('%s against %s: %s', (pattern, origin, expected) => {
    expect(originMatches(pattern, origin)).toBe(expected);
  });
});

describe('authenticateRequest: what the signatures bind', () => {
  const tenants = new Tenants(buildConfig({
    homeservers: [{ name: 'hs.test', clientApi: 'http://127.0.0.1:1' }, { name: 'other-hs.test', clientApi: 'http://127.0.0.1:1' }],
  }).homeservers);
  const peer = createSigner(generateSeed());
  const scopedPeer = createSigner(generateSeed());
  // The peer's published keys: one plain, one scoped for m.requests (MSC4100).
  const keyring: KeyLookup = {
    verifyKey: async (server, keyId, { scoped }) => {
      if (server !== 'peer.test') return undefined;
      const validUntilTs = Date.now() + 3600_000;
      if (scoped) return keyId === 'ed25519:s' ? { publicKey: scopedPeer.publicKey, validUntilTs } : undefined;
      return keyId === 'ed25519:a' ? { publicKey: peer.publicKey, validUntilTs } : undefined;
    },
  };
  const uri = '/_matrix/federation/v1/media/download/abc';
  const signed = (destination: string, scheme: string, content?: unknown) => buildAuthorizationHeader(
    { method: 'POST', uri, origin: 'peer.test', destination, content },
    scheme === X_MATRIX_SCHEME ? 'ed25519:a' : 'ed25519:s',
    scheme === X_MATRIX_SCHEME ? peer : scopedPeer,
    scheme,
  );
  const authenticate = (authorization: string[], host: string, content?: unknown) =>
    authenticateRequest(keyring, { method: 'POST', uri, tenant: tenants.byHostHeader(host)!, authorization, content });
  const refusal = async (promise: Promise<unknown>) => {
    const error = await failure(promise);
    expect(error).toBeInstanceOf(MatrixError);
    const { status, errcode, message } = error as MatrixError;
    return { status, errcode, message };
  };

  test('the body is signed as content: the signed body passes, an altered or missing one does not', async () => {
    const header = signed('hs.test', X_MATRIX_SCHEME, { pdus: [], edus: [{ a: 1 }] });
    const accepted = await authenticate([header], 'hs.test', { pdus: [], edus: [{ a: 1 }] });
    expect([accepted.origin, accepted.tenant.name, accepted.schemes]).toEqual(['peer.test', 'hs.test', [X_MATRIX_SCHEME]]);
    const doesNotVerify = { status: 401, errcode: 'M_UNAUTHORIZED', message: 'The X-Matrix signature by ed25519:a does not verify' };
    expect(await refusal(authenticate([header], 'hs.test', { pdus: [], edus: [{ a: 2 }] }))).toEqual(doesNotVerify);
    expect(await refusal(authenticate([header], 'hs.test'))).toEqual(doesNotVerify);
    // And a body-less signature does not cover a request that has a body.
    expect(await refusal(authenticate([signed('hs.test', X_MATRIX_SCHEME)], 'hs.test', { a: 1 }))).toEqual(doesNotVerify);
  });

  test('X-Matrix and X-MSC4100-Scoped naming the same destination both verify', async () => {
    const accepted = await authenticate([signed('hs.test', X_MATRIX_SCHEME), signed('hs.test', MSC4100_SCOPED_SCHEME)], 'hs.test');
    expect(accepted.schemes).toEqual([X_MATRIX_SCHEME, MSC4100_SCOPED_SCHEME]);
  });

  test('an old sender\'s X-Matrix without destination beside an X-MSC4100-Scoped naming it agree', async () => {
    const legacy = signed('hs.test', X_MATRIX_SCHEME).replace(/,destination="[^"]*"/, '');
    const accepted = await authenticate([legacy, signed('hs.test', MSC4100_SCOPED_SCHEME)], 'hs.test');
    expect(accepted.schemes).toEqual([X_MATRIX_SCHEME, MSC4100_SCOPED_SCHEME]);
  });

  test.each([
    ['X-Matrix first', 'hs.test', 'other-hs.test', 'hs.test'],
    ['X-MSC4100-Scoped first', 'other-hs.test', 'hs.test', 'other-hs.test'],
  ])('X-Matrix and X-MSC4100-Scoped naming different destinations are refused as malformed (%s)', async (_name, xMatrixTo, scopedTo, host) => {
    // Each signature is valid for its own destination: only the agreement check can refuse the pair.
    const headers = [signed(xMatrixTo, X_MATRIX_SCHEME), signed(scopedTo, MSC4100_SCOPED_SCHEME)];
    expect(await refusal(authenticate(headers, host))).toEqual({
      status: 400, errcode: 'M_UNAUTHORIZED', message: 'The Authorization headers disagree on destination',
    });
  });
});

describe('authenticateRequest: refusals before and during verification', () => {
  const tenants = new Tenants(buildConfig({
    homeservers: [
      { name: 'hs.test', clientApi: 'http://127.0.0.1:1' },
      { name: 'other-hs.test', clientApi: 'http://127.0.0.1:1' },
      { name: 'allowing.test', clientApi: 'http://127.0.0.1:1', federation: { allowOrigins: ['friend.test', 'peer.test'] } },
      { name: 'allow-other.test', clientApi: 'http://127.0.0.1:1', federation: { allowOrigins: ['friend.test'] } },
      { name: 'denying.test', clientApi: 'http://127.0.0.1:1', federation: { denyOrigins: ['foe.test', 'peer.test'] } },
      { name: 'both.test', clientApi: 'http://127.0.0.1:1', federation: { allowOrigins: ['peer.test'], denyOrigins: ['peer.test'] } },
    ],
  }).homeservers);
  const peer = createSigner(generateSeed());
  const peer2 = createSigner(generateSeed());
  const scopedPeer = createSigner(generateSeed());
  const uri = '/_matrix/federation/v1/media/download/abc';
  let lookups: string[] = [];
  // Each key has its own validity, so what a cached success may last is visible.
  const validity: Record<string, number> = {};
  const keyring: KeyLookup = {
    verifyKey: async (server, keyId, { scoped }) => {
      lookups.push(`${server} ${keyId}${scoped ? ' scoped' : ''}`);
      if (server !== 'peer.test') return undefined;
      const validUntilTs = validity[keyId] ?? Date.now() + 3600_000;
      if (scoped) return keyId === 'ed25519:s' ? { publicKey: scopedPeer.publicKey, validUntilTs } : undefined;
      if (keyId === 'ed25519:b') return { publicKey: peer2.publicKey, validUntilTs };
      return keyId === 'ed25519:a' ? { publicKey: peer.publicKey, validUntilTs } : undefined;
    },
  };
  const sign = (destination: string, { scheme = X_MATRIX_SCHEME, origin = 'peer.test', keyId = 'ed25519:a', signer = peer } = {}) =>
    buildAuthorizationHeader({ method: 'GET', uri, origin, destination }, keyId, signer, scheme);
  const authenticate = (authorization: string[], host: string, verified?: VerifiedRequests) =>
    authenticateRequest(keyring, { method: 'GET', uri, tenant: tenants.byHostHeader(host)!, authorization }, verified);
  const refusal = async (promise: Promise<unknown>) => {
    const error = await failure(promise);
    expect(error).toBeInstanceOf(MatrixError);
    const { status, errcode, message } = error as MatrixError;
    return { status, errcode, message };
  };
  beforeEach(() => {
    lookups = [];
    for (const key of Object.keys(validity)) delete validity[key];
  });

  test.each([
    ['no Authorization header', []],
    ['only a Bearer token', ['Bearer abc']],
  ])('%s: 401 M_UNAUTHORIZED, no key looked up', async (_name, authorization) => {
    expect(await refusal(authenticate(authorization, 'hs.test'))).toEqual({ status: 401, errcode: 'M_UNAUTHORIZED', message: 'Missing X-Matrix Authorization header' });
    expect(lookups).toEqual([]);
  });

  test('X-Matrix and X-MSC4100-Scoped naming different origins are refused as malformed', async () => {
    const headers = [sign('hs.test'), sign('hs.test', { scheme: MSC4100_SCOPED_SCHEME, origin: 'other-peer.test', keyId: 'ed25519:s', signer: scopedPeer })];
    expect(await refusal(authenticate(headers, 'hs.test'))).toEqual({ status: 400, errcode: 'M_UNAUTHORIZED', message: 'The Authorization headers disagree on origin' });
    expect(lookups).toEqual([]);
  });

  test('a valid signature for another of our homeservers is refused at this one', async () => {
    expect(await refusal(authenticate([sign('other-hs.test')], 'hs.test'))).toEqual({
      status: 401, errcode: 'M_UNAUTHORIZED', message: 'The destination other-hs.test is not the homeserver this request was sent to',
    });
    expect(lookups).toEqual([]);
    expect((await authenticate([sign('other-hs.test')], 'other-hs.test')).tenant.name).toBe('other-hs.test');
  });

  test.each([
    ['allowing.test', true],
    ['allow-other.test', false],
    ['denying.test', false],
    ['both.test', false], // a deny entry wins over an allow entry
    ['hs.test', true], // no lists: everyone
  ])("the allow/deny lists of %s (admitted: %s), checked before any key lookup", async (host, admitted) => {
    const request = authenticate([sign(host)], host);
    if (admitted) {
      expect((await request).origin).toBe('peer.test');
      expect(lookups).toEqual(['peer.test ed25519:a']);
    } else {
      expect(await refusal(request)).toEqual({ status: 403, errcode: 'M_FORBIDDEN', message: 'Federation with peer.test is not allowed' });
      expect(lookups).toEqual([]);
    }
  });

  test('a key id of another algorithm is never looked up and refuses the request', async () => {
    const valid = sign('hs.test');
    const otherAlgorithm = valid.replace('key="ed25519:a"', 'key="curve25519:a"');
    expect(await refusal(authenticate([valid, otherAlgorithm], 'hs.test'))).toEqual({
      status: 401, errcode: 'M_UNAUTHORIZED', message: 'No usable key curve25519:a of peer.test to check the X-Matrix signature',
    });
    expect(lookups).toEqual(['peer.test ed25519:a']);
  });

  test('a scoped header needs an m.requests key: the refusal says so', async () => {
    // Signed by the plain key, which the keyring does not offer as scoped.
    const header = sign('hs.test', { scheme: MSC4100_SCOPED_SCHEME });
    expect(await refusal(authenticate([header], 'hs.test'))).toEqual({
      status: 401, errcode: 'M_UNAUTHORIZED', message: `No usable m.requests-scoped key ed25519:a of peer.test to check the ${MSC4100_SCOPED_SCHEME} signature`,
    });
    expect(lookups).toEqual(['peer.test ed25519:a scoped']);
  });

  test.each([
    ['two X-Matrix keys', 'ed25519:b', X_MATRIX_SCHEME],
    ['X-Matrix and X-MSC4100-Scoped', 'ed25519:s', MSC4100_SCOPED_SCHEME],
  ])('%s: a cached success lasts only as long as the key that expires first', async (_name, secondKey, secondScheme) => {
    let now = 1_000_000;
    const verified = new VerifiedRequests(3600_000, () => now);
    validity['ed25519:a'] = now + 60_000;
    validity[secondKey] = now + 1_000;
    const second = sign('hs.test', { scheme: secondScheme, keyId: secondKey, signer: secondKey === 'ed25519:b' ? peer2 : scopedPeer });
    // Swapped order as well: the shorter validity counts wherever it comes.
    for (const headers of [[sign('hs.test'), second], [second, sign('hs.test')]]) {
      lookups = [];
      now = 1_000_000;
      await authenticate(headers, 'hs.test', verified);
      now += 999;
      await authenticate(headers, 'hs.test', verified);
      expect(lookups).toHaveLength(2);
      now += 1;
      await authenticate(headers, 'hs.test', verified);
      expect(lookups).toHaveLength(4);
    }
  });
});
