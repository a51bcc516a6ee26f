// Static access tokens: answered without /account/whoami, per homeserver, compared in constant time and never logged.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningService } from '../../src/service.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const BOT_TOKEN = 'bot-token-0123456789abcdef';
const BRIDGE_TOKEN = 'bridge-token-0123456789abcdef';
const SOLO_TOKEN = 'solo-token-0123456789abcdef';
const ENV = 'MEDIA_REPO_TEST_STATIC_TOKENS';

describe('static access tokens', () => {
  let hs: StandInHomeserver;
  let service: RunningService;
  const logLines: string[] = [];

  beforeAll(async () => {
    hs = await startStandInHomeserver({ 'tok-alice': { userId: '@alice:a.example' } });
    const dir = mkdtempSync(join(tmpdir(), 'static-tokens-'));
    writeFileSync(join(dir, 'a.tokens'), `# bots\n${BOT_TOKEN} @bot:a.example\n\n${BRIDGE_TOKEN}   @bridge:a.example\n`, { mode: 0o600 });
    process.env[ENV] = `${SOLO_TOKEN} @solo:solo.example`;
    service = await startTestService({
      logLevel: 'debug',
      homeservers: [
        { name: 'a.example', clientApi: hs.url, staticAccessTokens: { file: join(dir, 'a.tokens') } },
        { name: 'b.example', clientApi: hs.url },
        // No homeserver at all: its static tokens are the only way in.
        { name: 'solo.example', staticAccessTokens: { env: ENV } },
      ],
    }, { logLines });
  });
  afterAll(async () => {
    delete process.env[ENV];
    await service.close();
    await hs.close();
  });

  const config = (host: string, token: string) =>
    rawRequest(`${service.url}/_matrix/client/v1/media/config`, { headers: { host, authorization: `Bearer ${token}` } });
  const upload = (host: string, token: string) => rawRequest(`${service.url}/_matrix/media/v3/upload`, {
    method: 'POST', headers: { host, authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: Buffer.from(`from ${token}`),
  });

  test('a static token is answered without asking the homeserver, and uploads as its user', async () => {
    const res = await upload('a.example', BOT_TOKEN);
    expect(res.status).toBe(200);
    expect(String(res.json().content_uri)).toMatch(/^mxc:\/\/a\.example\//);
    expect((await config('a.example', BRIDGE_TOKEN)).status).toBe(200);
    expect(hs.calls.get(BOT_TOKEN)).toBeUndefined();
    expect(hs.calls.get(BRIDGE_TOKEN)).toBeUndefined();
    const mediaId = String(res.json().content_uri).split('/').pop();
    const row = await service.services.db.knex('media').where({ media_id: mediaId }).first();
    expect(row.user_id).toBe('@bot:a.example');
  });

  test("homeserver tokens still go to /account/whoami", async () => {
    expect((await config('a.example', 'tok-alice')).status).toBe(200);
    expect(hs.calls.get('tok-alice')).toBe(1);
  });

  test("one homeserver's static token is nothing on another, which asks its own homeserver", async () => {
    const res = await config('b.example', BOT_TOKEN);
    expect(res.status).toBe(401);
    expect(res.json().errcode).toBe('M_UNKNOWN_TOKEN');
    expect(hs.calls.get(BOT_TOKEN)).toBe(1);
    expect((await config('solo.example', BOT_TOKEN)).json().errcode).toBe('M_UNKNOWN_TOKEN');
  });

  test('a homeserver without clientApi takes its static tokens from the environment and refuses any other', async () => {
    expect((await upload('solo.example', SOLO_TOKEN)).status).toBe(200);
    const near = await upload('solo.example', `${SOLO_TOKEN.slice(0, -1)}0`);
    expect(near.status).toBe(401);
    expect(near.json()).toEqual({ errcode: 'M_UNKNOWN_TOKEN', error: 'Unrecognised access token' });
    expect((await config('solo.example', SOLO_TOKEN.slice(0, 10))).status).toBe(401);
  });

  test('no token reaches the logs', () => {
    expect(logLines.length).toBeGreaterThan(0);
    for (const token of [BOT_TOKEN, BRIDGE_TOKEN, SOLO_TOKEN]) expect(logLines.join('\n')).not.toContain(token);
  });
});
