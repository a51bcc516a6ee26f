// The cache of successful X-Matrix verifications: a hit needs the identical request (headers, method, URI,
// destination), never outlives its TTL or the key's validity, and failures are never remembered.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { buildConfig } from '../../src/config/config.js';
import { Tenants } from '../../src/config/tenants.js';
import { authenticateRequest, type KeyLookup } from '../../src/federation/inbound-auth.js';
import { VerifiedRequests } from '../../src/federation/verified-requests.js';
import { createSigner, generateSeed } from '../../src/matrix/ed25519.js';
import { MatrixError } from '../../src/matrix/errors.js';
import { buildAuthorizationHeader } from '../../src/matrix/x-matrix.js';

const ORIGIN = 'peer.example';
const KEY_ID = 'ed25519:k1';
const URI = '/_matrix/federation/v1/media/download/abc';
const TTL_MS = 30_000;

const signer = createSigner(generateSeed());
const config = buildConfig({
  masterKey: randomBytes(32).toString('hex'),
  homeservers: [{ name: 'hs-a.example', clientApi: 'http://127.0.0.1:1' }, { name: 'hs-b.example', clientApi: 'http://127.0.0.1:1' }],
}, join(tmpdir(), 'config.yaml'));
const tenants = new Tenants(config.homeservers);
const tenantFor = (host: string) => tenants.byHostHeader(host)!;

let now = 1_000_000;
let keyValidUntil = now + 3_600_000;
let lookups = 0;
// The origin's real public key; each lookup counted, so a verification that ran is visible.
const keyring: KeyLookup = {
  verifyKey: async (serverName, keyId) => {
    lookups++;
    return serverName === ORIGIN && keyId === KEY_ID ? { publicKey: signer.publicKey, validUntilTs: keyValidUntil } : undefined;
  },
};

const header = (request: { method?: string; uri?: string; destination?: string } = {}) =>
  buildAuthorizationHeader({ method: request.method ?? 'GET', uri: request.uri ?? URI, origin: ORIGIN, destination: request.destination ?? 'hs-a.example' }, KEY_ID, signer);

function authenticate(verified: VerifiedRequests, request: { method?: string; uri?: string; host?: string; authorization: string[] }) {
  return authenticateRequest(keyring, { method: request.method ?? 'GET', uri: request.uri ?? URI, tenant: tenantFor(request.host ?? 'hs-a.example'), authorization: request.authorization }, verified);
}

async function status(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (error) {
    if (error instanceof MatrixError) return error.status;
    throw error;
  }
}

beforeEach(() => {
  now = 1_000_000;
  keyValidUntil = now + 3_600_000;
  lookups = 0;
});

const cache = () => new VerifiedRequests(TTL_MS, () => now);

test('an identical request within the TTL is not verified again', async () => {
  const verified = cache();
  const authorization = [header()];
  expect((await authenticate(verified, { authorization })).origin).toBe(ORIGIN);
  expect(lookups).toBe(1);
  now += TTL_MS - 1;
  expect((await authenticate(verified, { authorization })).tenant.name).toBe('hs-a.example');
  expect(lookups).toBe(1);
});

test('a cached success does not admit a different signature, even one differing in a single character', async () => {
  const verified = cache();
  const good = header();
  await authenticate(verified, { authorization: [good] });
  const sig = /sig="([^"]+)"/.exec(good)![1]!;
  const tampered = good.replace(sig, (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1));
  expect(await status(authenticate(verified, { authorization: [tampered] }))).toBe(401);
  expect(lookups).toBe(2);
  expect(await status(authenticate(verified, { authorization: [tampered] }))).toBe(401);
  expect(lookups).toBe(3);
});

test('another URI, method or destination with the same header misses and fails verification', async () => {
  const verified = cache();
  const authorization = [header()];
  await authenticate(verified, { authorization });
  expect(await status(authenticate(verified, { authorization, uri: `${URI}?allow_redirect=true` }))).toBe(401);
  expect(await status(authenticate(verified, { authorization, method: 'POST' }))).toBe(401);
  expect(lookups).toBe(3);
});

test('a request for another destination is verified on its own, and the first one stays cached', async () => {
  const verified = cache();
  await authenticate(verified, { authorization: [header()] });
  const forB = [header({ destination: 'hs-b.example' })];
  expect((await authenticate(verified, { authorization: forB, host: 'hs-b.example' })).tenant.name).toBe('hs-b.example');
  expect(lookups).toBe(2);
  // The destination check runs on a hit too: the header for hs-b sent to hs-a's Host is refused.
  expect(await status(authenticate(verified, { authorization: forB, host: 'hs-a.example' }))).toBe(401);
  await authenticate(verified, { authorization: [header()] });
  expect(lookups).toBe(2);
});

test('an entry expires after the TTL', async () => {
  const verified = cache();
  const authorization = [header()];
  await authenticate(verified, { authorization });
  now += TTL_MS;
  await authenticate(verified, { authorization });
  expect(lookups).toBe(2);
});

test('an entry never outlives the key that verified it', async () => {
  const verified = cache();
  keyValidUntil = now + 1_000;
  const authorization = [header()];
  await authenticate(verified, { authorization });
  now += 999;
  await authenticate(verified, { authorization });
  expect(lookups).toBe(1);
  now += 1;
  keyValidUntil = now; // the keyring no longer offers the expired key
  const expired = { verifyKey: async () => undefined };
  expect(await status(authenticateRequest(expired, { method: 'GET', uri: URI, tenant: tenantFor('hs-a.example'), authorization }, verified))).toBe(401);
});

test('failures are not remembered', async () => {
  const verified = cache();
  const authorization = [header()];
  const failing: KeyLookup = { verifyKey: async () => undefined };
  expect(await status(authenticateRequest(failing, { method: 'GET', uri: URI, tenant: tenantFor('hs-a.example'), authorization }, verified))).toBe(401);
  expect(await status(authenticateRequest(failing, { method: 'GET', uri: URI, tenant: tenantFor('hs-a.example'), authorization }, verified))).toBe(401);
  await authenticate(verified, { authorization });
  expect(lookups).toBe(1);
});

test('a TTL of 0 verifies every time', async () => {
  const verified = new VerifiedRequests(0, () => now);
  const authorization = [header()];
  await authenticate(verified, { authorization });
  await authenticate(verified, { authorization });
  expect(lookups).toBe(2);
});

test('a header naming no destination (an old sender) is cached per homeserver: a success at one is not one at another', async () => {
  const verified = cache();
  const authorization = [header().replace(/,destination="[^"]*"/, '')];
  expect((await authenticate(verified, { authorization })).tenant.name).toBe('hs-a.example');
  // Signed for hs-a: at hs-b it must be verified (and fail), not found in the cache.
  expect(await status(authenticate(verified, { authorization, host: 'hs-b.example' }))).toBe(401);
  expect(lookups).toBe(2);
});

test('a request with a body is never answered from the cache: the body is part of what is signed', async () => {
  const verified = cache();
  const signed = (content: unknown) => [buildAuthorizationHeader({ method: 'POST', uri: URI, origin: ORIGIN, destination: 'hs-a.example', content }, KEY_ID, signer)];
  const withBody = (authorization: string[], content: unknown) =>
    authenticateRequest(keyring, { method: 'POST', uri: URI, tenant: tenantFor('hs-a.example'), authorization, content }, verified);
  const authorization = signed({ a: 1 });
  await withBody(authorization, { a: 1 });
  expect(await status(withBody(authorization, { a: 2 }))).toBe(401);
  await withBody(authorization, { a: 1 });
  expect(lookups).toBe(3);
});
