// Matrix "unpadded Base64" (spec appendix): standard alphabet, no '=' on output; padding accepted on input.

const STANDARD = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_SAFE = /^[A-Za-z0-9_-]*={0,2}$/;

export class Base64Error extends Error {}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');
}

export function encodeBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * Decodes standard or URL-safe Base64, padded or not. Non-zero trailing bits are tolerated because
 * the spec's own test-vector seed has them; anything else malformed throws.
 */
export function decodeBase64(text: string): Buffer {
  const urlSafe = !STANDARD.test(text);
  if (urlSafe && !URL_SAFE.test(text)) throw new Base64Error('invalid Base64: unexpected character');
  const body = text.replace(/=+$/, '');
  const padding = text.length - body.length;
  if (body.length % 4 === 1) throw new Base64Error('invalid Base64: impossible length');
  if (padding > 0 && (body.length + padding) % 4 !== 0) throw new Base64Error('invalid Base64: wrong padding');
  return Buffer.from(body, urlSafe ? 'base64url' : 'base64');
}
