// Under load, a thumbnail render still queued when its client has gone is dropped: otherwise work nobody waits
// for piles up and starves the clients still there.
import { get } from 'node:http';
import sharp from 'sharp';
import type { RunningService } from '../../src/service.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const auth = { authorization: 'Bearer tok-alice' };
const CLIENTS = 40;

describe('abandoned thumbnail renders', () => {
  let hs: StandInHomeserver;
  let service: RunningService;

  beforeAll(async () => {
    hs = await startStandInHomeserver({ 'tok-alice': { userId: '@alice:a.example' } });
    service = await startTestService({
      homeservers: [{ name: 'a.example', clientApi: hs.url, hostnames: ['127.0.0.1'] }],
      media: { thumbnails: { dynamicSizing: true, maxSizesPerMedia: 1000 } },
    });
  });
  afterAll(async () => {
    await service?.close();
    await hs?.close();
  });

  /** Asks for a thumbnail and hangs up after `ms`, as a client that timed out would. */
  const askAndLeave = (path: string, ms: number) => new Promise<void>((resolve) => {
    const req = get(`${service.url}${path}`, { headers: auth }, (res) => res.resume());
    req.on('error', () => resolve());
    setTimeout(() => { req.destroy(); resolve(); }, ms);
  });

  test('renders whose clients hung up while queued never run, and the next request is still served', async () => {
    const noise = { width: 2500, height: 2500, channels: 3 as const, background: '#000', noise: { type: 'gaussian' as const, mean: 128, sigma: 40 } };
    const body = await sharp({ create: noise }).jpeg().toBuffer();
    const uploaded = await rawRequest(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', headers: { ...auth, 'content-type': 'image/jpeg' }, body });
    expect(uploaded.status).toBe(200);
    const mediaId = String(uploaded.json().content_uri).split('/').pop()!;
    const path = (width: number) => `/_matrix/client/v1/media/thumbnail/a.example/${mediaId}?width=${width}&height=${width}&method=scale`;
    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => askAndLeave(path(100 + i), 300)));
    // Queued behind every render still wanted: without dropping, all of the abandoned ones come first.
    const after = await rawRequest(`${service.url}${path(99)}`, { headers: auth });
    expect(after.status).toBe(200);
    const rendered = await service.services.db.knex('thumbnails').where({ media_id: mediaId }).count<Array<{ n: string | number }>>({ n: '*' });
    expect(Number(rendered[0]!.n)).toBeLessThan(CLIENTS / 2);
  });
});
