// The X-Matrix header grammar at its character-class bounds: which bytes a quoted or unquoted value
// may hold (RFC 9110 qdtext/quoted-pair and the lenient token), each bound from both sides.
import { MatrixError } from '../../src/matrix/errors.js';
import { parseAuthorization } from '../../src/matrix/x-matrix.js';

const REST = `origin="o.example",key="ed25519:k",sig="AAAA"`;

function refusal(header: string): string {
  try {
    parseAuthorization([header]);
  } catch (error) {
    expect(error).toBeInstanceOf(MatrixError);
    expect((error as MatrixError).errcode).toBe('M_UNAUTHORIZED');
    return (error as MatrixError).message;
  }
  throw new Error(`accepted ${JSON.stringify(header)}`);
}

describe('quoted values', () => {
  test.each([
    ['a tab (HTAB is qdtext)', '\t'],
    ['a space', ' '],
    ['"~", the last visible ASCII', '~'],
    ['U+0080, the first obs-text', '\u0080'],
    ['U+00FF, the last obs-text', '\u00ff'],
    ['an escaped tab', '\\\t'],
    ['an escaped "~"', '\\~'],
    ['an escaped U+00FF', '\\\u00ff'],
  ])('accept %s in an unknown parameter', (_name, text) => {
    expect(parseAuthorization([`X-Matrix note="a${text}b",${REST}`])?.origin).toBe('o.example');
  });

  test.each([
    ['U+001F, the last control character', '\u001f'],
    ['DEL (U+007F)', '\u007f'],
    ['U+0100, past obs-text', '\u0100'],
    ['an escaped control character', '\\\u0001'],
    ['an escaped DEL', '\\\u007f'],
    ['an escaped U+0100', '\\\u0100'],
  ])('refuse %s', (_name, text) => {
    expect(refusal(`X-Matrix note="a${text}b",${REST}`)).toMatch(/control character in a quoted value/);
  });

  test('a backslash keeps the next character, quote included, and drops itself', () => {
    const parsed = parseAuthorization([`X-Matrix origin="o.example",key="ed25519:k",sig="AA\\AA",x="\\""`]);
    expect(parsed?.signatures).toEqual({ 'ed25519:k': 'AAAA' });
  });
});

describe('unquoted values', () => {
  test.each([
    ['"!", the first visible ASCII', '!'],
    ['"~", the last visible ASCII', '~'],
  ])('accept %s', (_name, text) => {
    expect(parseAuthorization([`X-Matrix note=a${text}b,${REST}`])?.origin).toBe('o.example');
  });

  test.each([
    ['a space', ' '],
    ['a control character', '\u0001'],
    ['a quote', '"'],
    ['a backslash', '\\'],
    ['DEL', '\u007f'],
    ['a non-ASCII letter', 'é'],
  ])('end at %s, so what follows is not a parameter list', (_name, text) => {
    expect(refusal(`X-Matrix note=a${text}b,${REST}`)).toMatch(/expected ","/);
  });

  test('a comma ends an unquoted value, even with no space after it', () => {
    expect(parseAuthorization([`X-Matrix origin=o.example,key=ed25519:k,sig=AAAA`])?.signatures).toEqual({ 'ed25519:k': 'AAAA' });
  });
});

describe('parameter names', () => {
  test('names of Object.prototype members are unknown parameters, ignored however often they come', () => {
    const parsed = parseAuthorization([`X-Matrix constructor=a,__proto__=b,toString=c,constructor=d,hasOwnProperty=e,${REST}`]);
    expect(parsed).toEqual({ scheme: 'X-Matrix', origin: 'o.example', signatures: { 'ed25519:k': 'AAAA' } });
  });

  test('a name ends at the first non-token character', () => {
    expect(refusal(`X-Matrix ori gin="o.example",key="ed25519:k",sig="AAAA"`)).toMatch(/expected "=" after parameter ori/);
  });
});
