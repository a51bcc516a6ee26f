// Rate limits: token buckets on an injected clock, each scope and exemption, homeservers kept apart, and
// through the real service a 429 M_LIMIT_EXCEEDED with Retry-After and a slowed download.
import { buildConfig, type Config } from '../../src/config/config.js';
import { RateLimits } from '../../src/http/rate-limits.js';
import { TokenBuckets } from '../../src/http/token-buckets.js';
import { MatrixError } from '../../src/matrix/errors.js';
import type { RunningService } from '../../src/service.js';
import { patternBytes } from '../helpers/media-fixtures.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const bucket = (perSecond: number, burstCount: number) => ({ perSecond, burstCount });

describe('token buckets', () => {
  test('a burst, then one token per 1/perSecond; the wait is exact; perSecond 0 never limits', () => {
    let now = 1000;
    const buckets = new TokenBuckets(() => now);
    const spec = bucket(2, 3);
    expect([buckets.take('k', spec), buckets.take('k', spec), buckets.take('k', spec)]).toEqual([0, 0, 0]);
    expect(buckets.take('k', spec)).toBe(500);
    now += 499;
    expect(buckets.take('k', spec)).toBe(1);
    now += 1;
    expect(buckets.take('k', spec)).toBe(0);
    expect(buckets.take('other', spec)).toBe(0);
    now += 60_000; // refills to the burst, no further
    for (let i = 0; i < 3; i++) expect(buckets.take('k', spec)).toBe(0);
    expect(buckets.take('k', spec)).toBeGreaterThan(0);
    for (let i = 0; i < 100; i++) expect(buckets.take('free', bucket(0, 1))).toBe(0);
  });

  test('borrowing goes into debt and says how long to wait', () => {
    let now = 0;
    const buckets = new TokenBuckets(() => now);
    const spec = bucket(1000, 1000);
    expect(buckets.borrow('ip', spec, 1000)).toBe(0);
    expect(buckets.borrow('ip', spec, 500)).toBe(500);
    now += 500;
    expect(buckets.borrow('ip', spec, 0)).toBe(0);
  });
});

describe('rate limit policy', () => {
  let now = 0;
  const clock = () => now;
  const limited = bucket(1, 2);
  const families = { upload: { perUser: limited, perIp: limited }, federation: { perServer: limited }, download: { perIp: limited } };
  const config: Config = buildConfig({
    rateLimits: { enabled: true, exemptIps: ['10.0.0.0/8'], exemptUsers: ['@bot_*:a.example'], families, remoteFetches: limited },
    homeservers: [
      { name: 'a.example', clientApi: 'http://127.0.0.1:1' },
      { name: 'b.example', clientApi: 'http://127.0.0.1:1', rateLimits: { enabled: false } },
      { name: 'c.example', clientApi: 'http://127.0.0.1:1' },
    ],
  });
  const [a, b, c] = config.homeservers as [Config['homeservers'][number], Config['homeservers'][number], Config['homeservers'][number]];
  const refusals: string[] = [];
  const limits = new RateLimits(config.homeservers, config.rateLimits, (hs, family, scope) => refusals.push(`${hs} ${family} ${scope}`), clock);
  const refused = (fn: () => void): MatrixError => {
    try {
      fn();
    } catch (error) {
      return error as MatrixError;
    }
    throw new Error('not refused');
  };

  test('per IP, per user, per remote server, per destination: 429 M_LIMIT_EXCEEDED with retry_after_ms', () => {
    limits.checkIp(a, 'upload', '192.0.2.1');
    limits.checkIp(a, 'upload', '192.0.2.1');
    const error = refused(() => limits.checkIp(a, 'upload', '192.0.2.1'));
    expect(error).toMatchObject({ status: 429, errcode: 'M_LIMIT_EXCEEDED', extra: { retry_after_ms: 1000 } });
    expect(error.message).toContain('upload per ip');
    limits.checkUser(a, 'upload', '@alice:a.example', '192.0.2.9');
    limits.checkUser(a, 'upload', '@alice:a.example', '192.0.2.9');
    expect(refused(() => limits.checkUser(a, 'upload', '@alice:a.example', '192.0.2.9')).status).toBe(429);
    limits.checkServer(a, 'remote.example', '192.0.2.7');
    limits.checkServer(a, 'remote.example', '192.0.2.7');
    expect(refused(() => limits.checkServer(a, 'remote.example', '192.0.2.7')).status).toBe(429);
    limits.checkRemoteFetch('a.example', 'slow.example');
    limits.checkRemoteFetch('a.example', 'slow.example');
    expect(refused(() => limits.checkRemoteFetch('a.example', 'slow.example')).status).toBe(429);
    expect(refusals).toEqual(['a.example upload ip', 'a.example upload user', 'a.example federation server', 'a.example remote_fetch remote_fetch']);
    now += 1000;
    limits.checkIp(a, 'upload', '192.0.2.1');
  });

  test('families without a limit, exempt IP ranges and exempt users are never refused', () => {
    for (let i = 0; i < 20; i++) {
      limits.checkIp(a, 'config', '192.0.2.2');
      limits.checkIp(a, 'upload', '10.1.2.3');
      limits.checkUser(a, 'upload', '@bot_irc:a.example', '192.0.2.3');
    }
  });

  test('each homeserver has its own buckets and its own policy', () => {
    limits.checkUser(c, 'upload', '@u:x', '192.0.2.4');
    limits.checkUser(c, 'upload', '@u:x', '192.0.2.4');
    expect(refused(() => limits.checkUser(c, 'upload', '@u:x', '192.0.2.4')).status).toBe(429);
    // The same user ID and IP on a.example still have a full bucket; b.example is not limited at all.
    limits.checkUser(a, 'upload', '@u:x', '192.0.2.4');
    for (let i = 0; i < 20; i++) limits.checkUser(b, 'upload', '@u:x', '192.0.2.4');
  });
});

describe('rate limits through the service', () => {
  let whoami: StandInHomeserver;
  let service: RunningService;
  beforeAll(async () => {
    whoami = await startStandInHomeserver({ tok: { userId: '@alice:a.example' }, bot: { userId: '@bot:a.example' } });
    service = await startTestService({
      trustProxy: 'loopback',
      rateLimits: {
        enabled: true,
        exemptUsers: ['@bot:*'],
        families: { config: { perIp: bucket(0.001, 2), perUser: bucket(0.001, 3) } },
        downloadBandwidth: { bytesPerSecond: 100_000, burstBytes: 50_000 },
      },
      homeservers: [{ name: 'a.example', clientApi: whoami.url }, { name: 'b.example', clientApi: whoami.url }],
    });
  });
  afterAll(async () => {
    await service?.close();
    await whoami?.close();
  });

  const config = (ip: string, token = 'tok', host = 'a.example') => rawRequest(`${service.url}/_matrix/client/v1/media/config`, {
    headers: { Host: host, Authorization: `Bearer ${token}`, 'X-Forwarded-For': ip },
  });

  test('past the per-IP limit: 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After; another IP (via trustProxy) is not held', async () => {
    expect((await config('198.51.100.1')).status).toBe(200);
    expect((await config('198.51.100.1')).status).toBe(200);
    const refused = await config('198.51.100.1');
    expect(refused.status).toBe(429);
    expect(refused.json()).toMatchObject({ errcode: 'M_LIMIT_EXCEEDED' });
    const retryAfterMs = Number(refused.json().retry_after_ms);
    expect(retryAfterMs).toBeGreaterThan(990_000);
    expect(refused.headers['retry-after']).toBe(String(Math.ceil(retryAfterMs / 1000)));
    expect((await config('198.51.100.2')).status).toBe(200);
  });

  test('past the per-user limit across IPs, while an exempt user and another homeserver go on', async () => {
    // alice has used 3 of her 3 (two from .1, one from .2): a fresh IP does not help her.
    const refused = await config('198.51.100.3');
    expect(refused.status).toBe(429);
    expect(String(refused.json().error)).toContain('per user');
    expect((await config('198.51.100.3', 'bot')).status).toBe(200);
    expect((await config('198.51.100.4', 'tok', 'b.example')).status).toBe(200);
  });

  test('downloads are slowed to the IP\'s bandwidth share, not refused', async () => {
    const up = await rawRequest(`${service.url}/_matrix/media/v3/upload`, {
      method: 'POST', headers: { Host: 'a.example', Authorization: 'Bearer tok', 'Content-Type': 'application/octet-stream' }, body: patternBytes(150_000),
    });
    const mediaId = String(up.json().content_uri).split('/').pop();
    const started = Date.now();
    const res = await rawRequest(`${service.url}/_matrix/client/v1/media/download/a.example/${mediaId}`, {
      headers: { Host: 'a.example', Authorization: 'Bearer tok', 'X-Forwarded-For': '198.51.100.9' },
    });
    expect(res.status).toBe(200);
    expect(res.body.equals(patternBytes(150_000))).toBe(true);
    // 50 kB of burst, then 100 kB at 100 kB/s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });
});
