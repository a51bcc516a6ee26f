// Property tests of the X-Matrix parser: whatever the header says, it answers null, a parse, or a Matrix
// error (400 M_UNAUTHORIZED); every header a sender builds parses back to what was signed.
import fc from 'fast-check';
import { MatrixError } from '../../src/matrix/errors.js';
import { buildAuthorizationHeader, parseAuthorization, X_MATRIX_SCHEME } from '../../src/matrix/x-matrix.js';

const RUNS = { numRuns: 400, seed: 1414 };
/** Characters X-Matrix headers are made of, so that random values often get deep into the grammar. */
const ALPHABET = ['X', '-', 'M', 'a', 't', 'r', 'i', 'x', ' ', '\t', ',', '=', '"', '\\', ':', '.', 'o', 'g', 'n', 'k', 'e', 'y', 's', 'd', '1', '\u0000', '\u00e9', '\u{1F600}'];
const headerish = fc.array(fc.constantFrom(...ALPHABET), { maxLength: 80 }).map((chars) => chars.join(''));
const param = fc.tuple(fc.constantFrom('origin', 'destination', 'key', 'sig', 'signature', 'ORIGIN', 'other'), fc.oneof(headerish, fc.string()), fc.boolean())
  .map(([name, value, quoted]) => `${name}=${quoted ? `"${value}"` : value}`);
const structured = fc.tuple(fc.constantFrom('X-Matrix', 'x-matrix', 'X-Matrix-Scoped', 'Bearer', ''), fc.array(param, { maxLength: 6 }), fc.constantFrom(',', ', ', ' ,'))
  .map(([scheme, params, sep]) => `${scheme} ${params.join(sep)}`);

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const serverName = fc.tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }))
  .map(([labels, port]) => `${labels.join('.')}.test${port === undefined ? '' : `:${port}`}`);
const keyId = fc.stringMatching(/^[A-Za-z0-9_]{1,12}$/).map((v) => `ed25519:${v}`);
/** Headers that only go wrong (if at all) in one place. */
const nearlyValid = fc.tuple(serverName, keyId, fc.constantFrom('c2ln', 'c2ln==', '%%', ''), fc.constantFrom('', ',', ',destination="a.test"', ',destination="a..test"'))
  .map(([origin, key, sig, rest]) => `X-Matrix origin="${origin}",key="${key}",sig="${sig}"${rest}`);

function outcome(values: string[]): 'null' | 'parsed' | 'refused' {
  try {
    return parseAuthorization(values, X_MATRIX_SCHEME) === null ? 'null' : 'parsed';
  } catch (error) {
    // The parser's own error type, with the status a malformed header gets, and nothing else escapes.
    if (!(error instanceof MatrixError) || error.status !== 400 || error.errcode !== 'M_UNAUTHORIZED') throw error;
    return 'refused';
  }
}

test('random text, random structured headers and several at once: only null, a parse, or 400 M_UNAUTHORIZED', () => {
  fc.assert(fc.property(fc.array(fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), headerish, structured, nearlyValid), { minLength: 1, maxLength: 3 }), (values) => {
    outcome(values);
  }), RUNS);
});

test('the generators reach every outcome (the property above is not vacuous)', () => {
  const seen = new Set(fc.sample(fc.array(fc.oneof(structured, nearlyValid), { minLength: 1, maxLength: 2 }), { numRuns: 2000, seed: 7 }).map(outcome));
  expect([...seen].sort()).toEqual(['null', 'parsed', 'refused']);
});

const signatureBytes = fc.uint8Array({ minLength: 64, maxLength: 64 });

test('every header a sender builds parses back to its origin, destination, key and signature', () => {
  fc.assert(fc.property(serverName, serverName, keyId, signatureBytes, (origin, destination, key, sig) => {
    const header = buildAuthorizationHeader({ method: 'GET', uri: '/_matrix/federation/v1/media/download/x', origin, destination }, key, { publicKey: new Uint8Array(32), sign: () => sig });
    const parsed = parseAuthorization([header], X_MATRIX_SCHEME);
    expect(parsed).toEqual({ scheme: X_MATRIX_SCHEME, origin, destination, signatures: { [key]: Buffer.from(sig).toString('base64').replace(/=+$/, '') } });
  }), RUNS);
});
