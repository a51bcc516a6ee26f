// Thumbnails through the authenticated endpoint: real images made with sharp here, outputs measured with sharp.
import sharp from 'sharp';
import { createClient } from 'matrix-js-sdk';
import type { RunningService } from '../../src/service.js';
import { startTestService } from '../helpers/service-under-test.js';
import { blobFiles, countRows } from '../helpers/media-fixtures.js';
import { rawRequest, type RawResponse } from '../helpers/raw-http.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

const MAX_SOURCE_BYTES = 2 * 1024 * 1024;
const MAX_PIXELS = 4_000_000;

/** A gradient (frames differ by `seed`): real content, yet small once compressed. */
function pixels(width: number, height: number, channels: 3 | 4, seed = 1): Buffer {
  const data = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) data[(y * width + x) * channels + c] = c === 3 ? 255 : (x * (c + 1) + y * 2 + seed * 60) & 0xff;
    }
  }
  return data;
}
const png = (width: number, height: number) => sharp(pixels(width, height, 4), { raw: { width, height, channels: 4 } }).png().toBuffer();
const jpeg = (width: number, height: number) => sharp(pixels(width, height, 3), { raw: { width, height, channels: 3 } }).jpeg().toBuffer();
async function animatedGif(width: number, height: number, frames: number): Promise<Buffer> {
  const strip = Buffer.concat(Array.from({ length: frames }, (_, f) => pixels(width, height, 4, f + 1)));
  return sharp(strip, { raw: { width, height: height * frames, channels: 4, pageHeight: height } })
    .gif({ delay: Array(frames).fill(100), loop: 0 }).toBuffer();
}

describe('thumbnails', () => {
  let hs: StandInHomeserver;
  let service: RunningService;

  beforeAll(async () => {
    hs = await startStandInHomeserver({ 'tok-alice': { userId: '@alice:a.example' } });
    service = await startTestService({
      homeservers: [{ name: 'a.example', clientApi: hs.url, hostnames: ['127.0.0.1'], maxUploadBytes: 8 * 1024 * 1024 }],
      media: { thumbnails: { maxSourceBytes: MAX_SOURCE_BYTES, maxPixels: MAX_PIXELS } },
    });
  });
  afterAll(async () => {
    await service.close();
    await hs.close();
  });

  const auth = { authorization: 'Bearer tok-alice' };
  async function upload(bytes: Buffer, type: string): Promise<string> {
    const res = await rawRequest(`${service.url}/_matrix/media/v3/upload`, { method: 'POST', headers: { ...auth, 'content-type': type }, body: bytes });
    expect(res.status).toBe(200);
    return String(res.json().content_uri);
  }
  /** The SDK builds the authenticated thumbnail URL, as a client would. */
  function thumbnail(mxc: string, width: number, height: number, method: 'crop' | 'scale', extra = ''): Promise<RawResponse> {
    const client = createClient({ baseUrl: service.url });
    const url = client.mxcUrlToHttp(mxc, width, height, method, false, true, true)!;
    expect(url).toContain('/_matrix/client/v1/media/thumbnail/');
    return rawRequest(`${url}${extra}`, { headers: auth });
  }
  const measure = (res: RawResponse) => sharp(res.body, { animated: true }).metadata();

  test('crop gives the configured size at or above the request, as PNG for a PNG source', async () => {
    const mxc = await upload(await png(1000, 800), 'image/png');
    const res = await thumbnail(mxc, 64, 64, 'crop');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['content-disposition']).toBe('inline; filename="thumbnail.png"');
    expect(res.headers['cache-control']).toMatch(/^private,/);
    const meta = await measure(res);
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 96, 96]);
  });

  test('scale keeps the aspect ratio inside the chosen box; JPEG stays JPEG', async () => {
    const mxc = await upload(await jpeg(1000, 800), 'image/jpeg');
    const res = await thumbnail(mxc, 300, 200, 'scale');
    expect(res.headers['content-type']).toBe('image/jpeg');
    const meta = await measure(res);
    // 320x240 is the smallest configured scale box holding 300x200; 1000x800 fits it at 300x240.
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 300, 240]);
  });

  test('requests beyond every configured size of a larger original get the largest one', async () => {
    const mxc = await upload(await jpeg(2400, 1600), 'image/jpeg');
    const meta = await measure(await thumbnail(mxc, 2000, 2000, 'scale'));
    expect([meta.width, meta.height]).toEqual([800, 533]);
  });

  // Spec: "When the content is smaller than the requested dimensions, servers SHOULD return the original content".
  test('small images are never upscaled: scale and crop return the original itself', async () => {
    const original = await png(20, 10);
    const mxc = await upload(original, 'image/png');
    for (const [w, h, method] of [[320, 240, 'scale'], [96, 96, 'crop']] as const) {
      const res = await thumbnail(mxc, w, h, method);
      expect(res.headers['content-type']).toBe('image/png');
      expect(res.body.equals(original)).toBe(true);
    }
  });

  test('an animated GIF gives an animated WebP only when animated=true', async () => {
    const mxc = await upload(await animatedGif(200, 100, 4), 'image/gif');
    const animated = await thumbnail(mxc, 96, 96, 'crop', '&animated=true');
    expect(animated.headers['content-type']).toBe('image/webp');
    expect(animated.headers['content-disposition']).toBe('inline; filename="thumbnail.webp"');
    const meta = await measure(animated);
    expect([meta.format, meta.pages, meta.width, meta.pageHeight]).toEqual(['webp', 4, 96, 96]);

    for (const extra of ['', '&animated=false']) {
      const still = await thumbnail(mxc, 96, 96, 'crop', extra);
      expect(still.headers['content-type']).toBe('image/png');
      const stillMeta = await measure(still);
      expect([stillMeta.format, stillMeta.pages ?? 1, stillMeta.width, stillMeta.height]).toEqual(['png', 1, 96, 96]);
    }
  });

  test('an animated GIF under maxPixels per frame but over it across its frames is 413 for animated=true only', async () => {
    // 800x800 is 640,000 pixels a frame; 7 frames are 4,480,000, over MAX_PIXELS (4,000,000).
    const frames = 7;
    const strip = Buffer.concat(Array.from({ length: frames }, (_, f) => Buffer.alloc(800 * 800 * 4, Buffer.from([f * 30, 100, 200 - f * 20, 255]))));
    const gif = await sharp(strip, { raw: { width: 800, height: 800 * frames, channels: 4, pageHeight: 800 } }).gif({ delay: Array(frames).fill(100) }).toBuffer();
    expect((await sharp(gif, { animated: true }).metadata()).pages).toBe(frames);
    const mxc = await upload(gif, 'image/gif');
    const animated = await thumbnail(mxc, 96, 96, 'crop', '&animated=true');
    expect([animated.status, animated.json().errcode]).toEqual([413, 'M_TOO_LARGE']);
    // One frame is within the limit: the still thumbnail is made.
    const still = await thumbnail(mxc, 96, 96, 'crop');
    expect([still.status, still.headers['content-type']]).toEqual([200, 'image/png']);
  });

  test('animated=true on a still image behaves as animated=false', async () => {
    const mxc = await upload(await png(300, 300), 'image/png');
    const res = await thumbnail(mxc, 32, 32, 'crop', '&animated=true');
    expect(res.headers['content-type']).toBe('image/png');
    expect((await measure(res)).pages ?? 1).toBe(1);
  });

  test('EXIF orientation is applied before sizing', async () => {
    const rotated = await sharp(pixels(400, 200, 3), { raw: { width: 400, height: 200, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const mxc = await upload(rotated, 'image/jpeg');
    const meta = await measure(await thumbnail(mxc, 320, 240, 'scale'));
    // Displayed upright it is 200x400: it fits 320x240 at 120x240.
    expect([meta.width, meta.height]).toEqual([120, 240]);
  });

  test('generated once: repeated and concurrent requests share one row and one stored file', async () => {
    const mxc = await upload(await png(640, 640), 'image/png');
    const mediaId = mxc.split('/').pop()!;
    const blobsBefore = (await blobFiles(service)).length;
    const results = await Promise.all(Array.from({ length: 6 }, () => thumbnail(mxc, 90, 90, 'crop')));
    const again = await thumbnail(mxc, 90, 90, 'crop');
    for (const res of [...results, again]) {
      expect(res.status).toBe(200);
      expect(res.body).toEqual(results[0]!.body);
    }
    const rows = await service.services.db.knex('thumbnails').where({ media_id: mediaId });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ width: 96, height: 96, method: 'crop', animated: false });
    expect((await blobFiles(service)).length).toBe(blobsBefore + 1);
  });

  test('a source over maxSourceBytes is 413 M_TOO_LARGE', async () => {
    const big = await sharp(pixels(1000, 1000, 3), { raw: { width: 1000, height: 1000, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
    expect(big.length).toBeGreaterThan(MAX_SOURCE_BYTES);
    const res = await thumbnail(await upload(big, 'image/png'), 32, 32, 'crop');
    expect(res.status).toBe(413);
    expect(res.json().errcode).toBe('M_TOO_LARGE');
  });

  test('an image over maxPixels is 413 M_TOO_LARGE, even when it compresses well', async () => {
    const huge = await sharp({ create: { width: 2500, height: 2000, channels: 3, background: '#336699' } }).png().toBuffer();
    expect(huge.length).toBeLessThan(MAX_SOURCE_BYTES);
    const res = await thumbnail(await upload(huge, 'image/png'), 32, 32, 'crop');
    expect(res.status).toBe(413);
    expect(res.json().errcode).toBe('M_TOO_LARGE');
  });

  test('content that is not an image (or an unsupported one) is 400 M_UNKNOWN', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="100" height="100"/></svg>');
    for (const [bytes, type] of [[Buffer.from('just some text'), 'text/plain'], [svg, 'image/svg+xml'], [Buffer.from('\x89PNG\r\n\x1a\ntruncated'), 'image/png']] as const) {
      const res = await thumbnail(await upload(bytes, type), 32, 32, 'crop');
      expect(res.status).toBe(400);
      expect(res.json()).toEqual({ errcode: 'M_UNKNOWN', error: 'Cannot generate thumbnails for the requested content' });
    }
  });

  test('a thumbnail that cannot be made is refused again without reading the source', async () => {
    const mxc = await upload(Buffer.from('\x89PNG\r\n\x1a\nstill truncated'), 'image/png');
    expect((await thumbnail(mxc, 32, 32, 'crop')).status).toBe(400);
    const storage = service.services.datastores.get('default');
    const read = storage.read.bind(storage);
    let reads = 0;
    storage.read = (...args) => { reads++; return read(...args); };
    try {
      const again = await thumbnail(mxc, 32, 32, 'crop');
      expect(again.status).toBe(400);
      expect(again.json().errcode).toBe('M_UNKNOWN');
    } finally {
      storage.read = read;
    }
    expect(reads).toBe(0);
  });

  test.each([
    ['reading the source for its size', async (mxc: string) => mxc],
    ['reading the source to render it', async (mxc: string) => {
      expect((await thumbnail(mxc, 32, 32, 'crop')).status).toBe(200); // the image is probed and known
      return mxc;
    }],
  ])('a transient storage error while %s is not remembered: the next request succeeds', async (_when, prepare) => {
    const mxc = await prepare(await upload(await png(400, 400), 'image/png'));
    const storage = service.services.datastores.get('default');
    const read = storage.read.bind(storage);
    storage.read = async () => { throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }); };
    let failed: RawResponse;
    try {
      failed = await thumbnail(mxc, 90, 90, 'crop');
    } finally {
      storage.read = read;
    }
    expect(failed.status).toBeGreaterThanOrEqual(500);
    expect(failed.json().errcode).toBe('M_UNKNOWN');
    const retried = await thumbnail(mxc, 90, 90, 'crop');
    expect([retried.status, retried.headers['content-type']]).toEqual([200, 'image/png']);
  });

  test.each([
    ['width=0&height=32', 'M_INVALID_PARAM', '"width" must be a positive integer'],
    ['width=-5&height=32', 'M_INVALID_PARAM', '"width" must be a positive integer'],
    ['width=1.5&height=32', 'M_INVALID_PARAM', '"width" must be a positive integer'],
    ['width=abc&height=32', 'M_INVALID_PARAM', '"width" must be a positive integer'],
    ['height=32', 'M_MISSING_PARAM', '"width" is required'],
    ['width=32&height=32&method=stretch', 'M_INVALID_PARAM', '"method" must be crop or scale'],
    ['width=32&height=32&animated=yes', 'M_INVALID_PARAM', '"animated" must be true or false'],
  ])('parameters %s are 400 %s', async (query, errcode, error) => {
    const mxc = await upload(await png(50, 50), 'image/png');
    const rowsBefore = await countRows(service, 'thumbnails');
    const res = await rawRequest(`${service.url}/_matrix/client/v1/media/thumbnail/a.example/${mxc.split('/').pop()}?${query}`, { headers: auth });
    expect([res.status, res.json()]).toEqual([400, { errcode, error }]);
    expect(await countRows(service, 'thumbnails')).toBe(rowsBefore);
  });
});
