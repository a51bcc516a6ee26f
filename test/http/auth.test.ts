// Access-token checks against a loopback stand-in homeserver: answers, failures, caching and coalescing.
import { buildConfig, type HomeserverConfig } from '../../src/config/config.js';
import { AccessTokenVerifier } from '../../src/http/auth.js';
import { createLogger } from '../../src/log.js';
import { MatrixError } from '../../src/matrix/errors.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';
import { freePort } from '../../bench/media-processes.js';

const TIMEOUT_MS = 400;

describe('AccessTokenVerifier', () => {
  let hs: StandInHomeserver;
  let tenant: HomeserverConfig;
  let logLines: string[];
  let log: ReturnType<typeof createLogger>;

  beforeAll(async () => {
    hs = await startStandInHomeserver({
      'tok-alice': { userId: '@alice:a.example', deviceId: 'PHONE' },
      'tok-guest': { userId: '@guest:a.example', isGuest: true },
      'tok-soft': { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'soft', soft_logout: true } },
      'tok-forbidden': { status: 403, body: { errcode: 'M_FORBIDDEN', error: 'no' } },
      'tok-limited': { status: 429, body: { errcode: 'M_LIMIT_EXCEEDED', error: 'slow down', retry_after_ms: 2500 } },
      'tok-500': { status: 500, body: { errcode: 'M_UNKNOWN', error: 'oops' } },
      'tok-notjson': { status: 200, body: 'not an object' },
      'tok-hang': 'hang',
    });
    tenant = homeserver('a.example', hs.url);
  });
  afterAll(() => hs.close());
  beforeEach(() => {
    logLines = [];
    log = createLogger('debug', { write: (line: string) => logLines.push(line) });
  });

  const verifier = (tokenCacheTtlMs = 60_000) =>
    new AccessTokenVerifier({ tokenCacheTtlMs, whoamiTimeoutMs: TIMEOUT_MS, allowQueryStringToken: true }, log);
  async function failure(promise: Promise<unknown>): Promise<MatrixError> {
    const error = await promise.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(MatrixError);
    return error as MatrixError;
  }

  test('a known token gives its user, device and guest flag', async () => {
    const v = verifier();
    expect(await v.verify(tenant, 'tok-alice')).toEqual({ userId: '@alice:a.example', deviceId: 'PHONE', isGuest: false });
    expect((await v.verify(tenant, 'tok-guest')).isGuest).toBe(true);
  });

  test('successes are cached for the TTL, per homeserver', async () => {
    const v = verifier(300);
    const other = homeserver('b.example', hs.url);
    const start = hs.calls.get('tok-alice') ?? 0;
    await v.verify(tenant, 'tok-alice');
    await v.verify(tenant, 'tok-alice');
    expect(hs.calls.get('tok-alice')).toBe(start + 1);
    await v.verify(other, 'tok-alice');
    expect(hs.calls.get('tok-alice')).toBe(start + 2);
    await new Promise((resolve) => setTimeout(resolve, 350));
    await v.verify(tenant, 'tok-alice');
    expect(hs.calls.get('tok-alice')).toBe(start + 3);
  });

  test('a TTL of 0 disables the cache', async () => {
    const v = verifier(0);
    const start = hs.calls.get('tok-alice') ?? 0;
    await v.verify(tenant, 'tok-alice');
    await v.verify(tenant, 'tok-alice');
    expect(hs.calls.get('tok-alice')).toBe(start + 2);
  });

  test('concurrent checks of one token make one call', async () => {
    const v = verifier();
    const start = hs.calls.get('tok-guest') ?? 0;
    const results = await Promise.all(Array.from({ length: 20 }, () => v.verify(tenant, 'tok-guest')));
    expect(new Set(results.map((r) => r.userId))).toEqual(new Set(['@guest:a.example']));
    expect(hs.calls.get('tok-guest')).toBe(start + 1);
  });

  test('failures are not cached: an unknown token is asked about again', async () => {
    const v = verifier();
    for (let i = 0; i < 2; i++) {
      const error = await failure(v.verify(tenant, 'tok-unknown'));
      expect([error.status, error.errcode]).toEqual([401, 'M_UNKNOWN_TOKEN']);
      expect(error.toJSON().soft_logout).toBeUndefined();
    }
    expect(hs.calls.get('tok-unknown')).toBe(2);
  });

  test('a token the homeserver once accepted is refused once the homeserver says so, after the TTL', async () => {
    const v = verifier(100);
    hs.tokens.set('tok-revoked', { userId: '@mallory:a.example' });
    await v.verify(tenant, 'tok-revoked');
    hs.tokens.delete('tok-revoked');
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect((await failure(v.verify(tenant, 'tok-revoked'))).errcode).toBe('M_UNKNOWN_TOKEN');
  });

  test.each([
    ['tok-soft', 401, 'M_UNKNOWN_TOKEN', { soft_logout: true }],
    ['tok-forbidden', 403, 'M_FORBIDDEN', {}],
    ['tok-limited', 429, 'M_LIMIT_EXCEEDED', { retry_after_ms: 2500 }],
    ['tok-500', 502, 'M_UNKNOWN', {}],
    ['tok-notjson', 502, 'M_UNKNOWN', {}],
  ])('%s maps to %d %s', async (token, status, errcode, extra) => {
    const error = await failure(verifier().verify(tenant, token));
    expect([error.status, error.errcode]).toEqual([status, errcode]);
    expect(error.toJSON()).toMatchObject(extra);
  });

  test('a homeserver that never answers is 504 after the timeout, not a hang', async () => {
    const started = Date.now();
    const error = await failure(verifier().verify(tenant, 'tok-hang'));
    expect([error.status, error.errcode]).toEqual([504, 'M_UNKNOWN']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 20);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1000);
  });

  test('a homeserver that is down is 502 at once', async () => {
    const error = await failure(verifier().verify(homeserver('down.example', `http://127.0.0.1:${await freePort()}`), 'tok-alice'));
    expect([error.status, error.errcode]).toEqual([502, 'M_UNKNOWN']);
  });

  test('a token that cannot be a token is refused without asking', async () => {
    for (const token of ['has space', 'new\nline', 'é']) {
      expect((await failure(verifier().verify(tenant, token))).errcode).toBe('M_UNKNOWN_TOKEN');
      expect(hs.calls.get(token)).toBeUndefined();
    }
  });

  test('an application service\'s user_id is passed on, and is part of the cache key', async () => {
    hs.tokens.set('as-token', { userId: '@bridge_bob:a.example' });
    const v = verifier();
    await v.verify(tenant, 'as-token', '@bridge_bob:a.example');
    expect(hs.lastUserIdParam).toBe('@bridge_bob:a.example');
    await v.verify(tenant, 'as-token');
    expect(hs.lastUserIdParam).toBeNull();
    expect(hs.calls.get('as-token')).toBe(2);
  });

  test('tokens never reach the log, even when checks fail', async () => {
    const v = verifier();
    await failure(v.verify(tenant, 'tok-hang'));
    await failure(v.verify(tenant, 'tok-500'));
    await failure(v.verify(homeserver('down.example', `http://127.0.0.1:${await freePort()}`), 'tok-secret-value'));
    expect(logLines.length).toBeGreaterThanOrEqual(3);
    for (const secret of ['tok-hang', 'tok-500', 'tok-secret-value']) expect(logLines.join('\n')).not.toContain(secret);
  });
});

function homeserver(name: string, clientApi: string): HomeserverConfig {
  return buildConfig({ homeservers: [{ name, clientApi, maxUploadBytes: 1000 }] }).homeservers[0]!;
}

