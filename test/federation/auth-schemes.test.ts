// The outbound scheme choice in isolation: chooseScheme's every branch and reason, and AuthSchemes' looks
// (what a failed look keeps, when it logs, when a request waits for the first look, how many at once).
import { AuthSchemes, chooseScheme } from '../../src/federation/auth-schemes.js';
import { SCOPED_SERVER_KEYS_PATH, SERVER_KEYS_PATH, type RemoteKey, type ServerKeySet } from '../../src/keys/server-keys.js';
import { createLogger } from '../../src/log.js';
import { encodeBase64 } from '../../src/matrix/base64.js';
import { createSigner, generateSeed } from '../../src/matrix/ed25519.js';
import { signJson } from '../../src/matrix/signed-json.js';
import { REQUESTS_SCOPE } from '../../src/matrix/x-matrix.js';

const signer = createSigner(generateSeed());
const ours = { keyId: 'ed25519:ours', publicKey: encodeBase64(signer.publicKey), scope: [REQUESTS_SCOPE] };
const remoteKey = (extra: Partial<RemoteKey> = {}): RemoteKey => ({ keyId: ours.keyId, publicKey: signer.publicKey, scopes: null, expiredTs: null, ...extra });
const set = (...keys: RemoteKey[]): ServerKeySet => ({ serverName: 'hs.test', validUntilTs: Date.now() + 3600_000, keys });
const v2Reason = `${ours.keyId} is in ${SERVER_KEYS_PATH}`;

describe('chooseScheme', () => {
  const scopedKey = remoteKey({ scopes: [REQUESTS_SCOPE] });
  test.each<[string, ServerKeySet | Error, ServerKeySet | Error, string, string]>([
    ['listed in both', set(remoteKey()), set(scopedKey), 'x-matrix+scoped', `${v2Reason} and has m.requests at ${SCOPED_SERVER_KEYS_PATH}`],
    ['in v2 only', set(remoteKey()), set(), 'x-matrix', `${v2Reason} (not with m.requests at ${SCOPED_SERVER_KEYS_PATH})`],
    ['in v2, scoped without m.requests', set(remoteKey()), set(remoteKey({ scopes: ['m.other'] })), 'x-matrix', `${v2Reason} (not with m.requests at ${SCOPED_SERVER_KEYS_PATH})`],
    ['in v2, the scoped endpoint failing', set(remoteKey()), new Error('boom'), 'x-matrix', `${v2Reason} (not with m.requests at ${SCOPED_SERVER_KEYS_PATH})`],
    ['only scoped', set(), set(scopedKey), 'scoped-first', `${ours.keyId} is only at ${SCOPED_SERVER_KEYS_PATH}: X-MSC4100-Scoped first, X-Matrix after an auth refusal`],
    ['only scoped, v2 failing', new Error('down'), set(scopedKey), 'scoped-first', `${ours.keyId} is only at ${SCOPED_SERVER_KEYS_PATH}: X-MSC4100-Scoped first, X-Matrix after an auth refusal`],
    ['in neither', set(), set(), 'scoped-first', `${ours.keyId} not found published (${SERVER_KEYS_PATH}: not listed; ${SCOPED_SERVER_KEYS_PATH}: not listed): X-MSC4100-Scoped first, X-Matrix after an auth refusal`],
    ['both failing', new Error('v2 down'), new Error('scoped down'), 'scoped-first', `${ours.keyId} not found published (${SERVER_KEYS_PATH}: v2 down; ${SCOPED_SERVER_KEYS_PATH}: scoped down): X-MSC4100-Scoped first, X-Matrix after an auth refusal`],
    // Listed means this very key, current: another key id, another public key under our id, or an old key do not count.
    ['another key id', set(remoteKey({ keyId: 'ed25519:x' })), set(remoteKey({ keyId: 'ed25519:x', scopes: [REQUESTS_SCOPE] })), 'scoped-first', expect.stringContaining('not found published') as unknown as string],
    ['another public key', set(remoteKey({ publicKey: new Uint8Array(32) })), set(remoteKey({ publicKey: new Uint8Array(32), scopes: [REQUESTS_SCOPE] })), 'scoped-first', expect.stringContaining('not found published') as unknown as string],
    ['an old key', set(remoteKey({ expiredTs: 5 })), set(remoteKey({ expiredTs: 5, scopes: [REQUESTS_SCOPE] })), 'scoped-first', expect.stringContaining('not found published') as unknown as string],
  ])('%s', (_name, v2, scoped, scheme, reason) => {
    expect(chooseScheme(ours, v2, scoped)).toEqual({ scheme, reason });
  });

  test('a key without m.requests is X-Matrix whatever is published', () => {
    expect(chooseScheme({ ...ours, scope: ['m.other'] }, set(), set(scopedKey))).toEqual({ scheme: 'x-matrix', reason: `${ours.keyId} has no m.requests scope` });
  });
});

describe('AuthSchemes', () => {
  /** What hs.test publishes: a self-signed key response per path, or an error to throw. */
  const published = new Map<string, unknown>();
  const fetched: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const keysJson = (scoped: boolean) => signJson({
    server_name: 'hs.test', valid_until_ts: Date.now() + 3600_000,
    verify_keys: { [ours.keyId]: scoped ? { key: ours.publicKey, scope: [REQUESTS_SCOPE] } : { key: ours.publicKey } },
  }, 'hs.test', ours.keyId, signer);
  const make = (options: { homeservers?: string[]; activeKey?: () => Promise<typeof ours | undefined>; fetchKeys?: (s: string, p: string) => Promise<unknown> } = {}) => new AuthSchemes({
    homeservers: options.homeservers ?? ['hs.test'],
    signingKeys: { activeKey: options.activeKey ?? (async () => ours) },
    fetchKeys: options.fetchKeys ?? (async (serverName, path) => {
      fetched.push(`${serverName} ${path}`);
      const answer = published.get(path);
      if (answer === undefined || answer instanceof Error || typeof answer === 'string') throw answer ?? new Error(`${path} answered 404`);
      return answer;
    }),
    log: createLogger('info', { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) }),
  });
  beforeEach(() => {
    published.clear();
    fetched.length = 0;
    lines.length = 0;
  });

  test('a look that reads neither endpoint keeps the last choice; a change is logged once', async () => {
    const schemes = make();
    published.set(SERVER_KEYS_PATH, keysJson(false));
    published.set(SCOPED_SERVER_KEYS_PATH, keysJson(true));
    await schemes.refresh('hs.test');
    await schemes.refresh('hs.test');
    expect(schemes.describe('hs.test')?.scheme).toBe('x-matrix+scoped');
    published.clear();
    await schemes.refresh('hs.test');
    expect(schemes.describe('hs.test')?.scheme).toBe('x-matrix+scoped');
    published.set(SCOPED_SERVER_KEYS_PATH, 'not an Error');
    await schemes.refresh('hs.test');
    expect(schemes.describe('hs.test')?.scheme).toBe('x-matrix+scoped');
    // One endpoint readable is news: v2 no longer lists the key.
    const other = createSigner(generateSeed());
    published.set(SERVER_KEYS_PATH, signJson({ server_name: 'hs.test', valid_until_ts: Date.now() + 3600_000, verify_keys: { 'ed25519:other': { key: encodeBase64(other.publicKey) } } }, 'hs.test', 'ed25519:other', other));
    await schemes.refresh('hs.test');
    expect(schemes.describe('hs.test')).toEqual({ scheme: 'scoped-first', reason: expect.stringContaining(`${SCOPED_SERVER_KEYS_PATH}: not an Error)`) });
    await schemes.refresh('hs.test');
    expect(lines.filter((l) => l.msg === 'outbound auth scheme').map((l) => [l.homeserver, l.scheme])).toEqual([['hs.test', 'x-matrix+scoped'], ['hs.test', 'scoped-first']]);
  });

  test('the first look with both endpoints unreadable still chooses, and says why', async () => {
    const schemes = make();
    await schemes.refresh('hs.test');
    expect(schemes.describe('hs.test')?.reason).toContain(`(${SERVER_KEYS_PATH}: ${SERVER_KEYS_PATH} answered 404; `);
  });

  test('no key: nothing chosen; a key store that fails is logged as a warning', async () => {
    const none = make({ activeKey: async () => undefined });
    await none.refresh('hs.test');
    expect([none.describe('hs.test'), fetched]).toEqual([undefined, []]);
    const failing = make({ activeKey: async () => { throw new Error('store down'); } });
    await failing.refresh('hs.test');
    expect(failing.describe('hs.test')).toBeUndefined();
    expect(lines.map((l) => [l.level, l.msg, l.err])).toEqual([[40, 'could not choose the outbound auth scheme', 'store down']]);
  });

  test('before start a request never starts a look; after start one for a hosted homeserver waits for its first look', async () => {
    published.set(SERVER_KEYS_PATH, keysJson(false));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const waiting: string[] = [];
    const schemes = make({
      // The first round's 8 workers are all held on the first 8 homeservers: hs.test's turn has not come.
      homeservers: [...Array.from({ length: 8 }, (_v, i) => `held${i}.test`), 'hs.test'],
      fetchKeys: async (serverName, path) => {
        fetched.push(`${serverName} ${path}`);
        if (serverName !== 'hs.test') await gate;
        return serverName === 'hs.test' && path === SERVER_KEYS_PATH ? keysJson(false) : Promise.reject(new Error('404'));
      },
    });
    expect(await schemes.schemeFor('hs.test')).toBeUndefined();
    expect(fetched).toEqual([]);
    const started = schemes.start();
    expect(await schemes.schemeFor('elsewhere.test')).toBeUndefined();
    expect(fetched.filter((f) => f.startsWith('elsewhere.test'))).toEqual([]); // not ours: never looked at
    const answer = schemes.schemeFor('hs.test').then((s) => waiting.push(String(s)));
    await answer;
    expect(waiting).toEqual(['x-matrix']);
    release();
    await started;
    schemes.stop();
    // hs.test was looked at once in the first round: by the request, not again by the round.
    expect(fetched.filter((f) => f.startsWith('hs.test')).sort()).toEqual([`hs.test ${SCOPED_SERVER_KEYS_PATH}`, `hs.test ${SERVER_KEYS_PATH}`]);
  });

  test('looks run at most 8 at a time, and every homeserver is looked at', async () => {
    const homeservers = Array.from({ length: 20 }, (_v, i) => `hs${i}.test`);
    let running = 0;
    let most = 0;
    const looked = new Set<string>();
    const schemes = make({
      homeservers,
      fetchKeys: async (serverName) => {
        looked.add(serverName);
        running++;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running--;
        throw new Error('404');
      },
    });
    await schemes.refreshAll();
    expect([most, looked.size]).toEqual([16, 20]); // two endpoints per look
    looked.clear();
    await schemes.refreshAll();
    expect(looked.size).toBe(20); // later rounds look at every homeserver again
    expect(homeservers.every((h) => schemes.describe(h)?.scheme === 'scoped-first')).toBe(true);
  });

  test('a changed reason is logged even when the scheme stays', async () => {
    const schemes = make();
    await schemes.refresh('hs.test');
    published.set(SCOPED_SERVER_KEYS_PATH, keysJson(true));
    await schemes.refresh('hs.test');
    expect(lines.filter((l) => l.msg === 'outbound auth scheme').map((l) => [l.scheme, String(l.reason).includes('only at')])).toEqual([['scoped-first', false], ['scoped-first', true]]);
  });

  test('start looks every refreshMs until stop', async () => {
    const schemes = new AuthSchemes({
      homeservers: ['hs.test'], signingKeys: { activeKey: async () => ours }, log: createLogger('silent'), refreshMs: 40,
      fetchKeys: async (serverName, path) => { fetched.push(`${serverName} ${path}`); throw new Error('404'); },
    });
    await schemes.start();
    const deadline = Date.now() + 5000;
    while (fetched.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(fetched.length).toBeGreaterThanOrEqual(6);
    schemes.stop();
    await new Promise((r) => setTimeout(r, 30)); // a look already under way may still land
    const looks = fetched.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(fetched.length).toBe(looks);
  });

  test('a request waits at most 3 s for a first look that hangs', async () => {
    const schemes = make({ homeservers: ['hs.test'], fetchKeys: () => new Promise(() => {}) });
    void schemes.start();
    const started = Date.now();
    expect(await schemes.schemeFor('hs.test')).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    schemes.stop();
  });
});
