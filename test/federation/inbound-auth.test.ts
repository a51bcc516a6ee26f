import { buildConfig } from '../../src/config/config.js';
import { Tenants } from '../../src/config/tenants.js';
import { authenticateRequest, originMatches, type KeyLookup } from '../../src/federation/inbound-auth.js';
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
