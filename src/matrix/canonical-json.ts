// Matrix canonical JSON (spec appendix "Canonical JSON"), byte-for-byte what Synapse's canonicaljson emits:
// keys sorted by code point, no whitespace, raw UTF-8, integers only in ±(2^53 − 1).

export class CanonicalJsonError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`cannot encode canonical JSON at ${path}: ${reason}`);
    this.name = 'CanonicalJsonError';
  }
}

// Far deeper than any Matrix object, far short of the stack: deeper input is refused, not a RangeError.
const MAX_DEPTH = 512;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Encodes `value` as canonical JSON text. Object properties whose value is `undefined` are left out,
 * as JSON.stringify does; anything else that is not plain JSON throws a CanonicalJsonError naming its path.
 */
export function encodeCanonicalJson(value: unknown): string {
  const parts: string[] = [];
  encodeValue(value, '$', parts, new Set());
  return parts.join('');
}

export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(encodeCanonicalJson(value), 'utf8');
}

/** Orders strings by Unicode code point, which is also the order of their UTF-8 bytes. */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

// UTF-16 puts surrogates (astral code points) below U+E000–U+FFFF; shift both ranges to restore code-point order.
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

function encodeValue(value: unknown, path: string, out: string[], ancestors: Set<object>): void {
  switch (typeof value) {
    case 'string':
      out.push(encodeString(value, path));
      return;
    case 'number':
      out.push(encodeNumber(value, path));
      return;
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'object':
      if (value === null) {
        out.push('null');
        return;
      }
      if (ancestors.has(value)) throw new CanonicalJsonError(path, 'the value contains a cycle');
      if (ancestors.size >= MAX_DEPTH) throw new CanonicalJsonError(path, `nested deeper than ${MAX_DEPTH} levels`);
      ancestors.add(value);
      if (Array.isArray(value)) encodeArray(value, path, out, ancestors);
      else encodeObject(value, path, out, ancestors);
      ancestors.delete(value);
      return;
    default:
      throw new CanonicalJsonError(path, `a value of type ${typeof value} is not JSON`);
  }
}

function encodeArray(array: unknown[], path: string, out: string[], ancestors: Set<object>): void {
  out.push('[');
  for (let i = 0; i < array.length; i++) {
    if (i > 0) out.push(',');
    encodeValue(array[i], `${path}[${i}]`, out, ancestors);
  }
  out.push(']');
}

function encodeObject(object: object, path: string, out: string[], ancestors: Set<object>): void {
  const prototype = Object.getPrototypeOf(object);
  if (prototype !== Object.prototype && prototype !== null) {
    throw new CanonicalJsonError(path, `a ${object.constructor?.name ?? 'non-plain'} object is not a JSON object`);
  }
  const record = object as Record<string, unknown>;
  const keys = Object.keys(record).filter((key) => record[key] !== undefined).sort(compareCodePoints);
  out.push('{');
  keys.forEach((key, index) => {
    const keyPath = `${path}${JSON.stringify([key])}`;
    if (index > 0) out.push(',');
    out.push(encodeString(key, keyPath), ':');
    encodeValue(record[key], keyPath, out, ancestors);
  });
  out.push('}');
}

// JSON.stringify escapes well-formed strings exactly as the canonical grammar asks (\b\t\n\f\r, lowercase
// \u00xx for other C0 controls, everything else raw); only lone surrogates would come out wrong.
function encodeString(text: string, path: string): string {
  if (LONE_SURROGATE.test(text)) throw new CanonicalJsonError(path, 'the string contains a lone UTF-16 surrogate');
  return JSON.stringify(text);
}

function encodeNumber(number: number, path: string): string {
  if (!Number.isInteger(number)) throw new CanonicalJsonError(path, `${number} is not an integer`);
  if (!Number.isSafeInteger(number)) throw new CanonicalJsonError(path, `${number} is outside ±(2^53 − 1)`);
  return String(number); // String(-0) is "0"
}
