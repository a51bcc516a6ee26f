// Content-Disposition values: those we write, read back with the `content-disposition` package (express's RFC 6266 parser) as the oracle, and file names read from peers' headers.
import { parse } from 'content-disposition';
import { contentDisposition, fileNameFromContentDisposition, formatDisposition, isInlineContentType } from '../../src/matrix/content-disposition.js';

describe('contentDisposition', () => {
  test.each([
    'image/png', 'IMAGE/PNG', 'text/plain; charset=utf-8', ' image/gif ; x=y', 'video/mp4', 'audio/x-flac', 'application/ld+json', 'image/avif',
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

  test('an ASCII name gets filename only, no filename*', () => {
    expect(formatDisposition('attachment', 'cat.jpg')).toBe('attachment; filename="cat.jpg"');
  });

  test('a name of only control characters is no name', () => {
    expect(contentDisposition('image/png', '\u0001\u0002')).toBe('inline');
  });
});

describe('fileNameFromContentDisposition', () => {
  test.each([
    ['inline; filename="cat.png"', 'cat.png'],
    ['attachment; filename=plain.txt', 'plain.txt'],
    ['attachment; filename="a \\"quoted\\" name"', 'a "quoted" name'],
    ['attachment; filename="fallback.txt"; filename*=UTF-8\'\'%E2%82%AC%20rates.txt', '€ rates.txt'],
    ['attachment; filename*=iso-8859-1\'en\'%A3%20rates', '£ rates'],
    ['ATTACHMENT; FILENAME="upper.txt"', 'upper.txt'],
    ['inline', null],
    ['attachment; filename="../../etc/passwd"', null],
    ['attachment; filename="bad\u0001name"', null],
    ['attachment; filename="bad\u007fname"', null],
    ['attachment; filename="back\\\\slash"', null],
    ['attachment; filename=""', null],
    ['attachment; filename=plain.txt  ', 'plain.txt'],
    ['attachment; filename="first.txt"; filename="second.txt"', 'first.txt'],
    ['attachment; filename*=utf-8\'\'%E2; filename="fallback.txt"', 'fallback.txt'],
    ['attachment; filename*=koi8-r\'\'%C1; filename="fallback.txt"', 'fallback.txt'],
    ['attachment; filename*=@utf-8\'\'x.txt; filename="fallback.txt"', 'fallback.txt'],
    ['attachment; filename*=no-quotes.txt; filename="fallback.txt"', 'fallback.txt'],
    ['attachment; filename*=utf-8\'\'a\nb; filename="fallback.txt"', 'fallback.txt'],
    ['attachment;filename=tight.txt', 'tight.txt'],
    ['attachment; filename = "spaced.txt"', 'spaced.txt'],
    ['attachment; filename="semi;colon.txt"', 'semi;colon.txt'],
    ['attachment; filename=5"disk', '5"disk'],
    ['attachment; filename=inch"', 'inch"'],
  ])('%s', (header, name) => {
    expect(fileNameFromContentDisposition(header)).toBe(name);
  });
  test('absent', () => expect(fileNameFromContentDisposition(undefined)).toBeNull());
});
