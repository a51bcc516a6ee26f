// Property tests of the small grammars: server names and mxc URIs never throw, accept exactly what they
// can format back, and canonical JSON throws nothing but its own error type.
import fc from 'fast-check';
import { CanonicalJsonError, encodeCanonicalJson } from '../../src/matrix/canonical-json.js';
import { formatMxc, isValidMediaId, parseMxc } from '../../src/matrix/mxc.js';
import { formatServerName, isValidServerName, parseServerName } from '../../src/matrix/server-name.js';

const RUNS = { numRuns: 1000, seed: 1414 };
const NAME_CHARS = ['a', 'Z', '0', '9', '.', '-', ':', '[', ']', 'x', 'f', '_', '/', ' ', '%', '\u00e9', '\u0000'];
const nameish = fc.array(fc.constantFrom(...NAME_CHARS), { maxLength: 40 }).map((c) => c.join(''));
const anyText = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), nameish);

test('server names: parse never throws, and what parses formats back to the same text', () => {
  fc.assert(fc.property(anyText, (text) => {
    const parsed = parseServerName(text);
    expect(isValidServerName(text)).toBe(parsed !== null);
    if (parsed) expect(formatServerName(parsed)).toBe(text);
  }), RUNS);
});

test('server names: generated valid names (DNS, IPv4, IPv6, ports) all parse', () => {
  const label = fc.stringMatching(/^[a-z]([a-z0-9-]{0,8}[a-z0-9])?$/);
  const dns = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
  const ipv4 = fc.ipV4();
  const ipv6 = fc.ipV6().map((a) => `[${a}]`);
  const port = fc.option(fc.integer({ min: 1, max: 65535 }).map((p) => `:${p}`), { nil: '' });
  fc.assert(fc.property(fc.oneof(dns, ipv4, ipv6), port, (hostPart, portPart) => {
    expect(parseServerName(`${hostPart}${portPart}`)).not.toBeNull();
  }), RUNS);
});

test('mxc URIs: parse never throws, and what parses formats back to the same URI', () => {
  const mxcish = fc.tuple(fc.constantFrom('mxc://', 'MXC://', 'mxc:/', ''), nameish, fc.constantFrom('/', '//', ''), fc.oneof(nameish, fc.string()))
    .map(([scheme, server, slash, id]) => `${scheme}${server}${slash}${id}`);
  fc.assert(fc.property(fc.oneof(anyText, mxcish), (uri) => {
    const parsed = parseMxc(uri);
    if (parsed) {
      expect(isValidServerName(parsed.serverName) && isValidMediaId(parsed.mediaId)).toBe(true);
      expect(formatMxc(parsed.serverName, parsed.mediaId)).toBe(uri);
    }
  }), RUNS);
});

test('mxc URIs: every valid server name and media ID round-trips', () => {
  const mediaId = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
  const server = fc.oneof(fc.ipV4(), fc.domain().filter(isValidServerName));
  fc.assert(fc.property(server, mediaId, (s, id) => {
    expect(parseMxc(formatMxc(s, id))).toEqual({ serverName: s, mediaId: id });
  }), RUNS);
});

test('canonical JSON: nesting of any depth encodes, or throws CanonicalJsonError (never a stack overflow)', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 20_000 }), fc.boolean(), (depth, arrays) => {
    let value: unknown = 1;
    for (let i = 0; i < depth; i++) value = arrays ? [value] : { a: value };
    try {
      encodeCanonicalJson(value);
    } catch (error) {
      if (!(error instanceof CanonicalJsonError)) throw error;
    }
  }), { numRuns: 60, seed: 1414 });
});

test('canonical JSON: any JS value encodes to text JSON.parse reads back, or throws CanonicalJsonError', () => {
  const value = fc.oneof(fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true, withSparseArray: true }), fc.jsonValue());
  fc.assert(fc.property(value, (v) => {
    let text: string;
    try {
      text = encodeCanonicalJson(v);
    } catch (error) {
      if (!(error instanceof CanonicalJsonError)) throw error;
      return;
    }
    expect(encodeCanonicalJson(JSON.parse(text))).toBe(text);
  }), RUNS);
});
