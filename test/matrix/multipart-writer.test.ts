// The multipart/mixed writer (src/matrix/multipart.ts): boundaries, the Content-Type, and the bytes it writes.
import {
  generateBoundary,
  multipartContentType,
  multipartMixedFrame,
  multipartMixedParts,
  multipartMixedStream,
  MultipartError,
  parseMultipartBoundary,
  type MediaPart,
} from '../../src/matrix/multipart.js';
import { B } from '../helpers/multipart.js';
import { collect, failure as errorOf, once } from '../helpers/streams.js';

describe('parseMultipartBoundary', () => {
  test.each([
    [`multipart/mixed; boundary=${B}`, B],
    [`multipart/mixed;boundary=${B}`, B],
    [`Multipart/Mixed; BOUNDARY=${B}`, B],
    [`multipart/mixed; charset=utf-8; boundary="${B}"`, B],
    [`multipart/mixed; boundary="with space:and/slash?"`, 'with space:and/slash?'],
    [`multipart/mixed; boundary="a\\:b"; other=x`, 'a:b'],
    [`multipart/mixed ; boundary = ${B} `, B],
    [`multipart/mixed; boundary=${'x'.repeat(70)}`, 'x'.repeat(70)],
  ])('%s', (contentType, boundary) => {
    expect(parseMultipartBoundary(contentType)).toBe(boundary);
  });

  test.each([
    ['not multipart', 'application/json', /expected multipart\/mixed/],
    ['another multipart type', `multipart/form-data; boundary=${B}`, /expected multipart\/mixed/],
    ['no boundary', 'multipart/mixed', /no boundary/],
    ['no boundary among other parameters', 'multipart/mixed; charset=utf-8', /no boundary/],
    ['an empty boundary', 'multipart/mixed; boundary=', /1–70/],
    ['a boundary of 71 characters', `multipart/mixed; boundary=${'x'.repeat(71)}`, /1–70/],
    ['a boundary ending in a space', 'multipart/mixed; boundary="abc "', /1–70/],
    ['a boundary with a forbidden character', 'multipart/mixed; boundary=a*b', /1–70/],
    ['two boundaries', `multipart/mixed; boundary=a; boundary=b`, /two boundary/],
    ['garbage parameters', 'multipart/mixed; ===', /malformed parameters/],
    ['an unterminated quote', 'multipart/mixed; boundary="abc', /malformed parameters/],
    ['text between parameters', 'multipart/mixed; boundary=abc junk; x=y', /malformed parameters/],
  ])('%s is refused', (_name, contentType, message) => {
    expect(() => parseMultipartBoundary(contentType)).toThrow(MultipartError);
    expect(() => parseMultipartBoundary(contentType)).toThrow(message);
  });

  test('the error is a MultipartError by name and quotes at most 100 characters of the media type', () => {
    const error = (() => {
      try {
        parseMultipartBoundary(`text/${'x'.repeat(1000)}`);
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected a failure');
    })();
    expect(error.name).toBe('MultipartError');
    expect(error.message).toBe(`expected multipart/mixed, got ${JSON.stringify(`text/${'x'.repeat(95)}`)}`);
  });
});

describe('generateBoundary and multipartContentType', () => {
  test('boundaries are random, valid and round-trip through the Content-Type', () => {
    const boundaries = new Set(Array.from({ length: 50 }, generateBoundary));
    expect(boundaries.size).toBe(50);
    for (const boundary of boundaries) expect(parseMultipartBoundary(multipartContentType(boundary))).toBe(boundary);
    for (const boundary of boundaries) expect(boundary).toMatch(/^[0-9a-f]{32}$/);
  });

  test('boundaries that are not tokens are quoted', () => {
    expect(multipartContentType(B)).toBe(`multipart/mixed; boundary=${B}`);
    expect(multipartContentType('a:b')).toBe('multipart/mixed; boundary="a:b"');
    expect(() => multipartContentType('')).toThrow(MultipartError);
  });
});

describe('multipart writer', () => {
  test('writes the RFC 2046 layout of the spec: JSON part, media part, close delimiter', async () => {
    const media: MediaPart = {
      headers: { 'Content-Type': 'image/png', 'Content-Disposition': 'inline; filename="cat.png"' },
      body: once(Buffer.from('PNGDATA')),
    };
    const written = (await collect(multipartMixedParts(B, {}, media))).toString();
    expect(written).toBe(
      `\r\n--${B}\r\nContent-Type: application/json\r\n\r\n{}\r\n` +
        `--${B}\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename="cat.png"\r\n\r\nPNGDATA\r\n` +
        `--${B}--\r\n`,
    );
  });

  test('writes the redirect form: a Location header and an empty body', async () => {
    const written = (await collect(multipartMixedParts(B, {}, { location: 'https://cdn.example/x?sig=1' }))).toString();
    expect(written).toBe(`\r\n--${B}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${B}\r\nLocation: https://cdn.example/x?sig=1\r\n\r\n\r\n--${B}--\r\n`);
  });

  test('the frame around the media bytes gives the same bytes as the streamed form', async () => {
    const headers = { 'Content-Type': 'text/plain' };
    const streamed = await collect(multipartMixedParts(B, { a: 1 }, { headers, body: once(Buffer.from('hello')) }));
    const { head, tail } = multipartMixedFrame(B, { a: 1 }, headers);
    expect(Buffer.concat([head, Buffer.from('hello'), tail])).toEqual(streamed);
    expect(() => multipartMixedFrame(B, {}, { 'Bad Name': 'x' })).toThrow(/invalid part header name/);
  });

  test('the stream form is a byte stream (buffering by bytes, not by chunk count) of the same bytes', async () => {
    const media = () => ({ headers: { 'Content-Type': 'text/plain' }, body: once(Buffer.from('hello')) });
    const stream = multipartMixedStream(B, {}, media());
    expect(stream.readableObjectMode).toBe(false);
    expect(await collect(stream)).toEqual(await collect(multipartMixedParts(B, {}, media())));
  });

  test('sends the JSON part before pulling any media', async () => {
    let pulled = false;
    async function* media(): AsyncGenerator<Buffer> {
      pulled = true;
      yield Buffer.from('x');
    }
    const parts = multipartMixedParts(B, {}, { headers: {}, body: media() });
    const first = await parts.next();
    expect(first.value.toString()).toContain('{}');
    expect(pulled).toBe(false);
  });

  test('refuses header injection and bad boundaries', async () => {
    const bad = (media: MediaPart, boundary = B) => errorOf(collect(multipartMixedParts(boundary, {}, media)));
    expect((await bad({ headers: { 'Content-Type': 'a\r\nX-Evil: 1' }, body: once(Buffer.alloc(0)) })).message).toMatch(/line break/);
    expect((await bad({ headers: { 'Bad Name': 'x' }, body: once(Buffer.alloc(0)) })).message).toMatch(/invalid part header name/);
    expect((await bad({ location: 'https://x\n\r\n--evil' })).message).toMatch(/line break/);
    expect((await bad({ location: 'https://x' }, 'x'.repeat(71))).message).toMatch(/1–70/);
  });
});
