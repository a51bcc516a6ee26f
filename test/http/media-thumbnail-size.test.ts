// Thumbnail sizes the spec's way, end to end: never smaller than asked unless the original is, crops in the
// asked aspect ratio, the original itself where it is no larger; and optional dynamic sizes.
import sharp from 'sharp';
import type { RunningService } from '../../src/service.js';
import { startTestService } from '../helpers/service-under-test.js';
import { rawRequest, type RawResponse } from '../helpers/raw-http.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const auth = { authorization: 'Bearer tok-alice' };
const image = (width: number, height: number, background = '#3a6ea5') => sharp({ create: { width, height, channels: 3, background } });

async function animatedGif(width: number, height: number): Promise<Buffer> {
  const frames = await Promise.all(['#ff0000', '#00ff00'].map((background) => image(width, height, background).raw().toBuffer()));
  return sharp(Buffer.concat(frames), { raw: { width, height: height * 2, channels: 3, pageHeight: height } }).gif({ delay: [100, 100], loop: 0 }).toBuffer();
}

describe('thumbnail sizes', () => {
  let hs: StandInHomeserver;
  let service: RunningService;
  let dynamic: RunningService;

  beforeAll(async () => {
    hs = await startStandInHomeserver({ 'tok-alice': { userId: '@alice:a.example' } });
    const homeservers = [{ name: 'a.example', clientApi: hs.url, hostnames: ['127.0.0.1'] }];
    service = await startTestService({ homeservers });
    dynamic = await startTestService({ homeservers, media: { thumbnails: { dynamicSizing: true, maxSizesPerMedia: 2 } } });
  }, 120_000); // two services, each with its own embedded database: slow on a loaded machine
  afterAll(async () => {
    await service?.close();
    await dynamic?.close();
    await hs?.close();
  });

  async function upload(on: RunningService, bytes: Buffer, type: string): Promise<string> {
    const res = await rawRequest(`${on.url}/_matrix/media/v3/upload`, { method: 'POST', headers: { ...auth, 'content-type': type }, body: bytes });
    expect(res.status).toBe(200);
    return String(res.json().content_uri).split('/').pop()!;
  }
  async function thumbnail(on: RunningService, mediaId: string, query: string): Promise<RawResponse> {
    const res = await rawRequest(`${on.url}/_matrix/client/v1/media/thumbnail/a.example/${mediaId}?${query}`, { headers: auth });
    expect(res.status).toBe(200);
    return res;
  }
  const measure = async (res: RawResponse) => {
    const meta = await sharp(res.body).metadata();
    return { width: meta.width, height: meta.height };
  };
  const rows = (on: RunningService, mediaId: string) => on.services.db.knex('thumbnails').where({ media_id: mediaId }).orderBy(['width', 'height']);

  test('the four crops of a 1000x500 PNG are at least as large as asked, in the asked ratio, or the original', async () => {
    const original = await image(1000, 500).png().toBuffer();
    const mediaId = await upload(service, original, 'image/png');
    const whole = await thumbnail(service, mediaId, 'width=2000&height=2000&method=crop');
    expect(whole.headers['content-type']).toBe('image/png');
    expect(whole.headers['content-disposition']).toBe('inline; filename="thumbnail.png"');
    expect(whole.body.equals(original)).toBe(true);
    for (const [w, h, expected] of [[500, 500, [500, 500]], [100, 100, [240, 240]], [50, 10, [95, 19]]] as const) {
      const size = await measure(await thumbnail(service, mediaId, `width=${w}&height=${h}&method=crop`));
      expect(size.width).toBeGreaterThanOrEqual(w);
      expect(size.height).toBeGreaterThanOrEqual(h);
      expect(Math.abs(size.width * h - size.height * w)).toBeLessThanOrEqual(Math.max(w, h));
      expect([size.width, size.height]).toEqual(expected);
    }
    // The original was served itself: only the three crops were generated.
    expect((await rows(service, mediaId)).map((r) => [r.width, r.height, r.method])).toEqual([[95, 19, 'crop'], [240, 240, 'crop'], [600, 600, 'crop']]);
  });

  test('scale beyond the original, and a crop the original cannot fill, return the original itself', async () => {
    const wide = await image(1000, 500).png().toBuffer();
    const wideId = await upload(service, wide, 'image/png');
    expect((await thumbnail(service, wideId, 'width=2000&height=2000&method=scale')).body.equals(wide)).toBe(true);
    const small = await image(40, 20).jpeg().toBuffer();
    const smallId = await upload(service, small, 'image/jpeg');
    const res = await thumbnail(service, smallId, 'width=32&height=32&method=crop');
    expect(res.headers['content-type']).toBe('image/jpeg');
    expect(res.body.equals(small)).toBe(true);
    expect(await rows(service, smallId)).toHaveLength(0);
  });

  test('an animated original is served itself only to animated=true; others get a still, re-encoded', async () => {
    const gif = await animatedGif(40, 20);
    const mediaId = await upload(service, gif, 'image/gif');
    const animated = await thumbnail(service, mediaId, 'width=96&height=96&method=crop&animated=true');
    expect(animated.headers['content-type']).toBe('image/gif');
    expect(animated.body.equals(gif)).toBe(true);
    const still = await thumbnail(service, mediaId, 'width=96&height=96&method=crop');
    expect(still.headers['content-type']).toBe('image/png');
    const meta = await sharp(still.body, { animated: true }).metadata();
    expect([meta.pages ?? 1, meta.width, meta.height]).toEqual([1, 20, 20]);
  });

  test('an original of a type thumbnails may not have (TIFF) is re-encoded even when small', async () => {
    const mediaId = await upload(service, await image(40, 20).tiff().toBuffer(), 'image/tiff');
    const res = await thumbnail(service, mediaId, 'width=320&height=240&method=scale');
    expect(res.headers['content-type']).toBe('image/png');
    expect(await measure(res)).toEqual({ width: 40, height: 20 });
  });

  test('dynamic sizing: the exact size asked, stored once, up to maxSizesPerMedia; then the configured choice', async () => {
    const mediaId = await upload(dynamic, await image(1000, 500).png().toBuffer(), 'image/png');
    expect(await measure(await thumbnail(dynamic, mediaId, 'width=50&height=50&method=crop'))).toEqual({ width: 50, height: 50 });
    expect(await measure(await thumbnail(dynamic, mediaId, 'width=100&height=100&method=scale'))).toEqual({ width: 100, height: 50 });
    expect(await measure(await thumbnail(dynamic, mediaId, 'width=50&height=50&method=crop'))).toEqual({ width: 50, height: 50 });
    // The cap is reached: a third size falls back to the configured sizes (a 60x60 crop inside 96x96).
    expect(await measure(await thumbnail(dynamic, mediaId, 'width=60&height=60&method=crop'))).toEqual({ width: 96, height: 96 });
    // Beyond the largest configured width: the configured choice too (9:1 inside 800x600).
    expect(await measure(await thumbnail(dynamic, mediaId, 'width=900&height=100&method=crop'))).toEqual({ width: 792, height: 88 });
    expect((await rows(dynamic, mediaId)).map((r) => [r.width, r.height, r.method])).toEqual([[50, 50, 'crop'], [96, 96, 'crop'], [100, 100, 'scale'], [792, 88, 'crop']]);
  });
});
