import { decodeBase64, encodeBase64, encodeBase64Url } from '../../src/matrix/base64.js';

// The spec's own examples (appendices, "Unpadded Base64").
const EXAMPLES: Array<[string, string]> = [
  ['', ''], ['f', 'Zg'], ['fo', 'Zm8'], ['foo', 'Zm9v'], ['foob', 'Zm9vYg'], ['fooba', 'Zm9vYmE'], ['foobar', 'Zm9vYmFy'],
];

describe('unpadded Base64', () => {
  test.each(EXAMPLES)('%j encodes to %j and decodes back, padded or not', (plain, encoded) => {
    expect(encodeBase64(Buffer.from(plain))).toBe(encoded);
    expect(decodeBase64(encoded).toString()).toBe(plain);
    expect(decodeBase64(encoded.padEnd(Math.ceil(encoded.length / 4) * 4, '=')).toString()).toBe(plain);
  });

  test('URL-safe input is accepted and output is available', () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf]);
    expect(encodeBase64(bytes)).toBe('+/+/');
    expect(encodeBase64Url(bytes)).toBe('-_-_');
    expect(decodeBase64('-_-_')).toEqual(bytes);
  });

  test("the spec's signing seed with non-zero trailing bits decodes to its bytes", () => {
    expect(decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1').toString('hex'))
      .toBe('6090c103d5e7af6b15a970fd563ed75549e6159719ae5c3c31dee4316fb75c0d');
  });

  test.each(['Zm9v!', 'Z', 'Zm9vY===', 'Zm=9', 'Zm9v+_'])('malformed %j is refused', (text) => {
    expect(() => decodeBase64(text)).toThrow(/invalid Base64/);
  });

  // Node's decoder would take these; the padding does not complete a 4-character group.
  test.each(['Zm9v=', 'Zg=', 'Zm9vYg='])('wrongly padded %j is refused', (text) => {
    expect(() => decodeBase64(text)).toThrow('invalid Base64: wrong padding');
  });
});
