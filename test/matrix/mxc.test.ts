import { formatMxc, isValidMediaId, MAX_MEDIA_ID_LENGTH, parseMxc } from '../../src/matrix/mxc.js';

describe('media ids: only [A-Za-z0-9_-], at most 255 characters', () => {
  test.each(['a', 'abcDEF123', 'with_underscore-and-dash', '-', 'x'.repeat(MAX_MEDIA_ID_LENGTH)])('%s is valid', (id) => {
    expect(isValidMediaId(id)).toBe(true);
  });

  test.each(['', '.', '..', 'a.b', 'a/b', '../etc', 'a b', 'a%2F', 'ä', 'a\0', 'a\n', 'x'.repeat(MAX_MEDIA_ID_LENGTH + 1)])(
    '%j is invalid',
    (id) => {
      expect(isValidMediaId(id)).toBe(false);
    },
  );

  test('a value that is not a string is invalid, even one whose text would be', () => {
    expect(isValidMediaId(['abc'] as unknown as string)).toBe(false);
    expect(isValidMediaId(123 as unknown as string)).toBe(false);
  });
});

describe('parseMxc', () => {
  test.each([
    ['mxc://matrix.org/abc123', { serverName: 'matrix.org', mediaId: 'abc123' }],
    ['mxc://matrix.org:8448/a_b-C', { serverName: 'matrix.org:8448', mediaId: 'a_b-C' }],
    ['mxc://1.2.3.4/x', { serverName: '1.2.3.4', mediaId: 'x' }],
    ['mxc://[::1]:8448/x', { serverName: '[::1]:8448', mediaId: 'x' }],
  ])('%s', (uri, expected) => {
    expect(parseMxc(uri)).toEqual(expected);
    expect(formatMxc(expected.serverName, expected.mediaId)).toBe(uri);
  });

  test.each([
    ['the spec traversal example', 'mxc://127.0.0.1/../../../some_service/etc/passwd'],
    ['traversal in the server name', 'mxc://../etc/passwd'],
    ['dot server name', 'mxc://./abc'],
    ['encoded slash', 'mxc://matrix.org/a%2F..%2Fb'],
    ['extra path', 'mxc://matrix.org/abc/def'],
    ['query', 'mxc://matrix.org/abc?x=1'],
    ['fragment', 'mxc://matrix.org/abc#x'],
    ['no media id', 'mxc://matrix.org/'],
    ['no slash', 'mxc://matrix.org'],
    ['no slash, a name that would also pass as a media id', 'mxc://localhost'],
    ['no server', 'mxc:///abc'],
    ['userinfo', 'mxc://user@matrix.org/abc'],
    ['upper-case scheme', 'MXC://matrix.org/abc'],
    ['http scheme', 'https://matrix.org/abc'],
    ['single slash', 'mxc:/matrix.org/abc'],
    ['backslash', 'mxc://matrix.org\\abc'],
    ['leading space', ' mxc://matrix.org/abc'],
    ['trailing newline', 'mxc://matrix.org/abc\n'],
    ['bad port', 'mxc://matrix.org:99999/abc'],
    ['overlong media id', `mxc://matrix.org/${'a'.repeat(256)}`],
    ['empty', ''],
  ])('%s is refused', (_name, uri) => {
    expect(parseMxc(uri)).toBeNull();
  });

  test('a value that is not a string is refused, not thrown on', () => {
    expect(parseMxc(42 as unknown as string)).toBeNull();
    expect(parseMxc(undefined as unknown as string)).toBeNull();
  });
});

describe('formatMxc', () => {
  test('refuses to build a URI from invalid parts', () => {
    expect(() => formatMxc('../x', 'abc')).toThrow(/invalid server name/);
    expect(() => formatMxc('matrix.org', 'a/b')).toThrow(/invalid media id/);
  });
});
