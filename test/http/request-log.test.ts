// The access log: one structured line per request with what an operator needs, and never a token
// (header or query string), nor a URL at all.
import type { RunningService } from '../../src/service.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const SECRET = 'syt_c2VjcmV0_tokenValue_0123456789';
let whoami: StandInHomeserver;

beforeAll(async () => {
  whoami = await startStandInHomeserver({ [SECRET]: { userId: '@alice:a.example' } });
});
afterAll(() => whoami.close());

async function withService(accessLog: boolean, run: (service: RunningService, lines: string[]) => Promise<void>): Promise<void> {
  const lines: string[] = [];
  const service = await startTestService({ logLevel: 'info', accessLog: { enabled: accessLog }, homeservers: [{ name: 'a.example', clientApi: whoami.url }] }, { logLines: lines });
  try {
    await run(service, lines);
  } finally {
    await service.close();
  }
}

const accessLines = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.logger === 'access');

test('one line per request with method, family, homeserver, status, bytes, duration and client IP; no token, no URL', async () => {
  await withService(true, async (service, lines) => {
    const up = await rawRequest(`${service.url}/_matrix/media/v3/upload?filename=secret-name.txt`, {
      method: 'POST', headers: { Host: 'a.example', Authorization: `Bearer ${SECRET}`, 'Content-Type': 'text/plain' }, body: Buffer.from('hello'),
    });
    expect(up.status).toBe(200);
    const mediaId = String(up.json().content_uri).split('/').pop()!;
    const down = await rawRequest(`${service.url}/_matrix/client/v1/media/download/a.example/${mediaId}?access_token=${SECRET}`, { headers: { Host: 'a.example' } });
    expect(down.status).toBe(200);
    expect((await rawRequest(`${service.url}/nowhere?access_token=${SECRET}`)).status).toBe(404);
    await new Promise((resolve) => setImmediate(resolve));
    const logged = accessLines(lines);
    expect(logged).toEqual([
      expect.objectContaining({ level: 30, method: 'POST', family: 'upload', homeserver: 'a.example', status: 200, ip: '127.0.0.1' }),
      expect.objectContaining({ method: 'GET', family: 'download', homeserver: 'a.example', status: 200, bytesOut: expect.any(Number) }),
      expect.objectContaining({ method: 'GET', family: 'other', homeserver: '-', status: 404 }),
    ]);
    expect(logged[0]!.bytesIn).toBeGreaterThanOrEqual(5);
    expect(logged[1]!.bytesOut).toBeGreaterThan(5);
    for (const line of logged) expect(typeof line.durationMs).toBe('number');
    const all = lines.join('\n');
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain('access_token');
    expect(all).not.toContain(mediaId);
    expect(all).not.toContain('secret-name');
  });
});

test('accessLog.enabled: false writes none', async () => {
  await withService(false, async (service, lines) => {
    expect((await rawRequest(`${service.url}/healthz`)).status).toBe(200);
    await new Promise((resolve) => setImmediate(resolve));
    expect(accessLines(lines)).toEqual([]);
  });
});
