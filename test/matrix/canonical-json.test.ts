import canonicalize from 'canonicalize';
import { canonicalJsonBytes, CanonicalJsonError, compareCodePoints, encodeCanonicalJson } from '../../src/matrix/canonical-json.js';
import { runPython } from '../helpers/python-worker.js';
import { createPrng, type Prng } from './prng.js';
import { testWithPython } from '../helpers/python-available.js';

describe('canonical JSON: the spec examples (appendices "Canonical JSON")', () => {
  const examples: Array<[string, unknown, string]> = [
    ['empty object', {}, '{}'],
    ['two keys', { one: 1, two: 'Two' }, '{"one":1,"two":"Two"}'],
    ['keys sorted', { b: '2', a: '1' }, '{"a":"1","b":"2"}'],
    [
      'nested auth object',
      {
        auth: {
          success: true,
          mxid: '@john.doe:example.com',
          profile: {
            display_name: 'John Doe',
            three_pids: [
              { medium: 'email', address: 'john.doe@example.org' },
              { medium: 'msisdn', address: '123456789' },
            ],
          },
        },
      },
      '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ],
    ['raw UTF-8 value', { a: '日本語' }, '{"a":"日本語"}'],
    ['non-ASCII keys by code point', { 本: 2, 日: 1 }, '{"日":1,"本":2}'],
    ['\\u65E5 escape decoded', JSON.parse('{"a": "\\u65E5"}'), '{"a":"日"}'],
    ['null', { a: null }, '{"a":null}'],
    ['-0 and 1e10', JSON.parse('{"a": -0, "b": 1e10}'), '{"a":0,"b":10000000000}'],
  ];

  test.each(examples)('%s', (_name, input, expected) => {
    expect(encodeCanonicalJson(input)).toBe(expected);
    expect(canonicalJsonBytes(input).equals(Buffer.from(expected, 'utf8'))).toBe(true);
  });
});

describe('canonical JSON: strings follow the spec grammar', () => {
  test('C0 controls use the short escapes and lowercase \\u00xx, nothing else is escaped', () => {
    const controls = Array.from({ length: 0x20 }, (_, code) => String.fromCharCode(code)).join('');
    const expected =
      '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f' +
      '\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"';
    expect(encodeCanonicalJson(controls)).toBe(expected);
    expect(encodeCanonicalJson('"\\/\u007f\u2028\u2029é😀')).toBe('"\\"\\\\/\u007f\u2028\u2029é😀"');
  });

  test('output bytes are UTF-8, astral characters as 4 bytes', () => {
    expect(canonicalJsonBytes('😀').toString('hex')).toBe('22f09f988022');
  });

  test('lone surrogates are rejected in values and keys', () => {
    expect(() => encodeCanonicalJson({ a: '\ud800' })).toThrow(CanonicalJsonError);
    expect(() => encodeCanonicalJson({ a: 'x\udc00y' })).toThrow(/lone UTF-16 surrogate/);
    expect(() => encodeCanonicalJson({ ['\udbff']: 1 })).toThrow(/lone UTF-16 surrogate/);
    expect(() => encodeCanonicalJson(['\udc00\ud800'])).toThrow(/lone UTF-16 surrogate/);
  });
});

describe('canonical JSON: key order is by code point, not UTF-16 unit', () => {
  test('U+E000 sorts before U+1F600 (UTF-16 order would put the emoji first)', () => {
    const value = { '\u{1F600}': 1, '\uE000': 2, a: 3 };
    expect(encodeCanonicalJson(value)).toBe('{"a":3,"\uE000":2,"\u{1F600}":1}');
    expect(Object.keys(value).sort()).toEqual(['a', '\u{1F600}', '\uE000']); // the trap being avoided
  });

  test('compareCodePoints agrees with comparing UTF-8 bytes', () => {
    const prng = createPrng(7);
    for (let i = 0; i < 2000; i++) {
      const a = randomString(prng, 4);
      const b = randomString(prng, 4);
      const bytes = Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
      expect(Math.sign(compareCodePoints(a, b))).toBe(bytes);
    }
  });
});

describe('canonical JSON: numbers', () => {
  test('the integer range is ±(2^53 − 1), floats with integer values are written as integers', () => {
    expect(encodeCanonicalJson([9007199254740991, -9007199254740991, 1e15, -0, 0])).toBe(
      '[9007199254740991,-9007199254740991,1000000000000000,0,0]',
    );
  });

  test.each([
    ['a fraction', 1.5, /1\.5 is not an integer/],
    ['NaN', NaN, /NaN is not an integer/],
    ['Infinity', Infinity, /Infinity is not an integer/],
    ['-Infinity', -Infinity, /-Infinity is not an integer/],
    ['2^53', 2 ** 53, /outside/],
    ['-(2^53)', -(2 ** 53), /outside/],
    ['1e300', 1e300, /outside/],
  ])('%s is rejected', (_name, number, message) => {
    expect(() => encodeCanonicalJson({ n: number })).toThrow(message);
  });
});

describe('canonical JSON: non-JSON values are rejected with their path', () => {
  test('the error names the path of the bad value', () => {
    let error: unknown;
    try {
      encodeCanonicalJson({ a: { b: [1, 2.5] } });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(CanonicalJsonError);
    expect((error as CanonicalJsonError).path).toBe('$["a"]["b"][1]');
    expect((error as Error).message).toBe('cannot encode canonical JSON at $["a"]["b"][1]: 2.5 is not an integer');
  });

  test.each([
    ['undefined at the top', undefined, /type undefined is not JSON/],
    ['undefined in an array', [undefined], /\$\[0\]: a value of type undefined/],
    ['a function', { f: () => 1 }, /type function is not JSON/],
    ['a symbol', { s: Symbol('x') }, /type symbol is not JSON/],
    ['a bigint', { b: 1n }, /type bigint is not JSON/],
    ['a Date', { d: new Date(0) }, /Date object is not a JSON object/],
    ['a Map', { m: new Map() }, /Map object is not a JSON object/],
    ['a Buffer', { b: Buffer.from('x') }, /Buffer object is not a JSON object/],
  ])('%s', (_name, value, message) => {
    expect(() => encodeCanonicalJson(value)).toThrow(message);
  });

  test('a cycle is reported, not a stack overflow', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = { back: cyclic };
    expect(() => encodeCanonicalJson(cyclic)).toThrow(/\$\["self"\]\["back"\]: the value contains a cycle/);
  });

  test('a shared (non-cyclic) object is fine, and undefined properties are left out like JSON.stringify does', () => {
    const shared = { x: 1 };
    expect(encodeCanonicalJson({ b: shared, a: shared, u: undefined })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });

  test('objects without a prototype are plain JSON objects', () => {
    const bare = Object.create(null) as Record<string, unknown>;
    bare.z = 1;
    bare.y = 2;
    expect(encodeCanonicalJson(bare)).toBe('{"y":2,"z":1}');
  });
});

// ---- oracles -------------------------------------------------------------------------------------------

const BMP_CHARS = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', '\u007f', 'é', '日', '\u2028', '\uE000', '\uFFFF', '\uD7FF'];
const ASTRAL_CHARS = ['\u{1F600}', '\u{10000}', '\u{10FFFF}', '\u{20BB7}'];

function randomString(prng: Prng, maxLength: number, astral = true): string {
  const palette = astral ? [...BMP_CHARS, ...ASTRAL_CHARS] : BMP_CHARS;
  let text = '';
  for (let i = prng.int(0, maxLength); i > 0; i--) text += prng.pick(palette);
  return text;
}

function randomValue(prng: Prng, depth: number, astral: boolean): unknown {
  const kind = prng.int(0, depth > 0 ? 7 : 4);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return prng.next() < 0.5;
    case 2:
      return prng.pick([0, -1, 1, 9007199254740991, -9007199254740991, prng.int(-1e6, 1e6), prng.int(0, 2 ** 40)]);
    case 3:
    case 4:
      return randomString(prng, 8, astral);
    case 5:
      return Array.from({ length: prng.int(0, 4) }, () => randomValue(prng, depth - 1, astral));
    default: {
      const object: Record<string, unknown> = {};
      for (let i = prng.int(0, 6); i > 0; i--) object[randomString(prng, 3, astral)] = randomValue(prng, depth - 1, astral);
      return object;
    }
  }
}

function randomObject(prng: Prng, astral: boolean): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (let i = prng.int(1, 8); i > 0; i--) object[randomString(prng, 3, astral)] = randomValue(prng, 3, astral);
  return object;
}

describe('canonical JSON: independent oracles', () => {
  test('matches RFC 8785 (npm canonicalize) on 500 random BMP-only objects', () => {
    const prng = createPrng(8785);
    for (let i = 0; i < 500; i++) {
      const value = randomObject(prng, false);
      expect(encodeCanonicalJson(value)).toBe(canonicalize(value));
    }
  });

  testWithPython("matches Synapse's python canonicaljson byte for byte on 400 random objects with astral keys", async () => {
    const prng = createPrng(1312);
    const values = Array.from({ length: 400 }, () => randomObject(prng, true));
    const script = [
      'import sys, json, base64',
      'from canonicaljson import encode_canonical_json',
      'for line in sys.stdin:',
      '    print(base64.b64encode(encode_canonical_json(json.loads(line))).decode())',
    ].join('\n');
    const output = await runPython(script, values.map((value) => JSON.stringify(value)).join('\n') + '\n');
    const expected = output.trim().split('\n');
    expect(expected).toHaveLength(values.length);
    const astralKeyed = values.filter((value) => Object.keys(value).some((key) => /[\u{10000}-\u{10FFFF}]/u.test(key)));
    expect(astralKeyed.length).toBeGreaterThan(50); // the comparison must exercise the code-point ordering
    values.forEach((value, index) => {
      expect(canonicalJsonBytes(value).toString('base64')).toBe(expected[index]);
    });
  });
});

describe('canonical JSON: edges StrykerJS found untested', () => {
  test('512 levels of nesting encode; a 513th is refused with the module error, not a stack overflow', () => {
    const nested = (levels: number): unknown => (levels === 0 ? 1 : [nested(levels - 1)]);
    expect(encodeCanonicalJson(nested(512))).toBe(`${'['.repeat(512)}1${']'.repeat(512)}`);
    expect(() => encodeCanonicalJson(nested(513))).toThrow(new CanonicalJsonError(`$${'[0]'.repeat(512)}`, 'nested deeper than 512 levels'));
    expect(() => encodeCanonicalJson(nested(513))).toThrow(CanonicalJsonError);
  });

  test('code points sort right at the edges of the surrogate and U+E000 ranges', () => {
    // U+103FE and U+103FF differ only in the low surrogate U+DFFE/U+DFFF; U+E000 and U+E001 in one unit.
    expect(encodeCanonicalJson({ '\u{103FF}': 1, '\u{103FE}': 2 })).toBe('{"\u{103FE}":2,"\u{103FF}":1}');
    expect(encodeCanonicalJson({ '\uE001': 1, '\uE000': 2 })).toBe('{"\uE000":2,"\uE001":1}');
    expect(Math.sign(compareCodePoints('\u{103FF}', '\u{103FE}'))).toBe(1);
    expect(Math.sign(compareCodePoints('\uE000', '\uE001'))).toBe(-1);
  });

  test('an object with a prototype but no constructor is refused with CanonicalJsonError', () => {
    const odd = Object.create(Object.create(null) as object) as object;
    let error: unknown;
    try {
      encodeCanonicalJson({ a: odd });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CanonicalJsonError);
    expect((error as Error).name).toBe('CanonicalJsonError');
    expect((error as Error).message).toMatch(/a non-plain object is not a JSON object/);
  });
});
