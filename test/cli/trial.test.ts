// The trial homeserver: made on first start without a config, reused afterwards, and the printed example works.
import { statSync, readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { prepareTrial, TRIAL_KEY_FILE, TRIAL_TOKEN_FILE } from '../../src/cli/trial.js';
import { readKeyFile } from '../../src/keys/key-files.js';
import { createLogger } from '../../src/log.js';
import { startService, type RunningService } from '../../src/service.js';
import { openTestDatabase } from '../helpers/database.js';
import { freePort } from '../../bench/media-processes.js';

describe('the trial homeserver', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'trial-'));
  let port: number;
  let trial: Awaited<ReturnType<typeof prepareTrial>>;
  let service: RunningService;

  beforeAll(async () => {
    port = await freePort();
    trial = await prepareTrial({ dataDir, listen: { host: '127.0.0.1', port } });
    service = await startService(trial.config, createLogger('silent'), await openTestDatabase());
  });
  afterAll(() => service.close());

  test('is named after the listen address, answers at 127.0.0.1 too, and signs with a key made on first start', async () => {
    const [hs] = trial.config.homeservers;
    expect(trial.config.homeservers).toHaveLength(1);
    expect(hs).toMatchObject({ name: `localhost:${port}`, hostnames: [`127.0.0.1:${port}`], signingKeyPath: join(dataDir, TRIAL_KEY_FILE) });
    expect(hs!.clientApi).toBeUndefined();
    expect((await readKeyFile(join(dataDir, TRIAL_KEY_FILE))).keys).toHaveLength(1);
    expect(await service.services.signingKeys.activeKey(hs!.name)).toMatchObject({ serverName: hs!.name, scope: ['m.requests'] });
    for (const file of [TRIAL_TOKEN_FILE, TRIAL_KEY_FILE]) expect(statSync(join(dataDir, file)).mode & 0o777).toBe(0o600);
  });

  test('a second start reuses the token and the key', async () => {
    const again = await prepareTrial({ dataDir, listen: { host: '127.0.0.1', port } });
    expect(again.instructions).toBe(trial.instructions);
    expect(readFileSync(join(dataDir, TRIAL_TOKEN_FILE), 'utf8')).toMatch(new RegExp(`^[A-Za-z0-9_-]{32} @trial:localhost:${port}\\n$`));
  });

  test('the printed example uploads a PNG, downloads it and thumbnails it', async () => {
    const lines = trial.instructions.split('\n').filter((line) => line.startsWith('  ')).map((line) => line.trim());
    expect(lines).toHaveLength(4);
    const token = /^TOKEN=(\S+)$/.exec(lines[0]!)![1]!;
    expect(readFileSync(join(dataDir, TRIAL_TOKEN_FILE), 'utf8')).toContain(token);
    const urlOf = (line: string) => /['"](http:\/\/[^'"]+)['"]/.exec(line)![1]!;
    const headers = { authorization: `Bearer ${token}` };
    const png = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#3366cc' } }).png().toBuffer();

    const uploaded = await fetch(urlOf(lines[1]!), { method: 'POST', headers: { ...headers, 'content-type': 'image/png' }, body: png });
    expect(uploaded.status).toBe(200);
    const { content_uri: mxc } = (await uploaded.json()) as { content_uri: string };
    expect(mxc).toMatch(new RegExp(`^mxc://localhost:${port}/`));
    const serverAndId = mxc.slice('mxc://'.length);

    const downloaded = await fetch(urlOf(lines[2]!).replace('$MXC', serverAndId), { headers });
    expect(downloaded.status).toBe(200);
    expect(Buffer.from(await downloaded.arrayBuffer()).equals(png)).toBe(true);

    const thumbnail = await fetch(urlOf(lines[3]!).replace('$MXC', serverAndId), { headers });
    expect(thumbnail.status).toBe(200);
    const meta = await sharp(Buffer.from(await thumbnail.arrayBuffer())).metadata();
    expect([meta.width, meta.height]).toEqual([96, 96]);

    const wrong = await fetch(urlOf(lines[2]!).replace('$MXC', serverAndId), { headers: { authorization: 'Bearer not-the-trial-token-at-all' } });
    expect(wrong.status).toBe(401);
  });
});
