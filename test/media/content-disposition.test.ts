// Content-Disposition values, read back with the `content-disposition` package (express's RFC 6266 parser) as the oracle.
import { parse } from 'content-disposition';
import { contentDisposition, formatDisposition, isInlineContentType } from '../../src/matrix/content-disposition.js';

describe('contentDisposition', () => {
  test.each([
    'image/png', 'IMAGE/PNG', 'text/plain; charset=utf-8', 'video/mp4', 'audio/x-flac', 'application/ld+json', 'image/avif',
  ])('%s is on the inline allow-list', (type) => {
    expect(isInlineContentType(type)).toBe(true);
    expect(contentDisposition(type, null)).toBe('inline');
  });

  test.each([
    'text/html', 'image/svg+xml', 'application/javascript', 'application/octet-stream', 'application/pdf', 'text/xml', 'nonsense',
  ])('%s is an attachment', (type) => {
    expect(contentDisposition(type, undefined)).toBe('attachment');
  });

  test.each([
    ['cat.jpg', 'cat.jpg'],
    ['a "quoted" name.png', 'a "quoted" name.png'],
    ['back\\slash.txt', 'back\\slash.txt'],
    ['Ünïcödé.txt', 'Ünïcödé.txt'],
    ['日本語のファイル.pdf', '日本語のファイル.pdf'],
    ['emoji 😀 (1).gif', 'emoji 😀 (1).gif'],
    ["it's 100%*.txt", "it's 100%*.txt"],
    ['line\r\nbreak\u0000.txt', 'linebreak.txt'],
    ['tab\there\u007f\u0085.txt', 'tabhere.txt'],
  ])('%j round-trips as %j', (name, expected) => {
    const header = contentDisposition('image/png', name);
    expect(header).toMatch(/^[\x20-\x7e]+$/);
    expect(parse(header)).toEqual({ type: 'inline', parameters: expect.objectContaining({ filename: expected }) });
  });

  test('non-ASCII names get an ASCII fallback first and filename* second (RFC 6266 §4.3)', () => {
    const header = formatDisposition('attachment', 'naïve 😀.txt');
    expect(header).toBe(`attachment; filename="na_ve _.txt"; filename*=utf-8''na%C3%AFve%20%F0%9F%98%80.txt`);
  });

  test('a name of only control characters is no name', () => {
    expect(contentDisposition('image/png', '\u0001\u0002')).toBe('inline');
  });
});
