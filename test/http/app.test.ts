import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningService } from '../../src/service.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';

const vectors = JSON.parse(readFileSync('test/fixtures/key-files.json', 'utf8')) as Record<string, { file: string; keyId: string }>;

describe('service', () => {
  let service: RunningService;
  beforeAll(async () => {
    const keyFile = join(mkdtempSync(join(tmpdir(), 'svc-')), 'hs.key');
    writeFileSync(keyFile, vectors.dendrite!.file);
    service = await startTestService({
      homeservers: [
        { name: 'a.example', clientApi: 'http://127.0.0.1:1', signingKeyPath: keyFile },
        { name: 'b.example', clientApi: 'http://127.0.0.1:1' },
      ],
    });
  });
  afterAll(async () => { await service.close(); });

  test('listens on loopback and the health endpoint checks the database', async () => {
    expect(service.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${service.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  test('unknown endpoints answer 404 M_UNRECOGNIZED as Matrix JSON; through an unknown Host, 404 M_NOT_FOUND', async () => {
    for (const path of ['/_matrix/media/v3/nothing', '/_matrix/federation/v1/media/zzz', '/']) {
      const res = await rawRequest(`${service.url}${path}`, { method: 'POST', headers: { host: 'a.example' } });
      expect(res.status).toBe(404);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.json()).toEqual({ errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
      const elsewhere = await fetch(`${service.url}${path}`, { method: 'POST' });
      expect([elsewhere.status, ((await elsewhere.json()) as { errcode: string }).errcode]).toEqual([404, 'M_NOT_FOUND']);
    }
  });

  test('each homeserver with a key file has its key imported at start', async () => {
    expect((await service.services.signingKeys.activeKey('a.example'))?.keyId).toBe(vectors.dendrite!.keyId);
    expect(await service.services.signingKeys.activeKey('b.example')).toBeUndefined();
  });
});
