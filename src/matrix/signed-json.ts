// Signing JSON (spec appendix "Signing Details" / "Checking for a Signature"): the signature covers the
// canonical JSON of the object without `signatures` and `unsigned`, so both can be added to later.
import { decodeBase64, encodeBase64 } from './base64.js';
import { canonicalJsonBytes } from './canonical-json.js';
import { verifySignature, type Signer } from './ed25519.js';

/** signatures[entity name][key id] = unpadded Base64 signature */
export type Signatures = Record<string, Record<string, string>>;

export type Signed<T extends object> = Omit<T, 'signatures'> & { signatures: Signatures };

const ED25519_PREFIX = 'ed25519:';

/** The bytes a signature covers: canonical JSON of `obj` minus `signatures` and `unsigned`. */
export function signedBytes(obj: object): Buffer {
  const { signatures: _signatures, unsigned: _unsigned, ...rest } = obj as Record<string, unknown>;
  return canonicalJsonBytes(rest);
}

/** Returns a copy of `obj` with signatures[entityName][keyId] added; other signatures and `unsigned` are kept. */
export function signJson<T extends object>(obj: T, entityName: string, keyId: string, signer: Signer): Signed<T> {
  if (!keyId.startsWith(ED25519_PREFIX)) throw new RangeError(`cannot sign with key ${keyId}: only ed25519 keys exist`);
  const existing = existingSignatures(obj);
  const signature = encodeBase64(signer.sign(signedBytes(obj)));
  const signatures: Signatures = { ...existing, [entityName]: { ...existing[entityName], [keyId]: signature } };
  return { ...obj, signatures } as Signed<T>;
}

/**
 * True only when signatures[entityName][keyId] is a valid ed25519 signature of `obj` by `publicKey`.
 * Anything missing, malformed or not encodable as canonical JSON gives false rather than an exception.
 */
export function verifyJsonSignature(obj: object, entityName: string, keyId: string, publicKey: Uint8Array): boolean {
  if (!keyId.startsWith(ED25519_PREFIX)) return false;
  const signature = signatureOf(obj, entityName, keyId);
  if (signature === undefined) return false;
  let signatureBytes: Buffer;
  let message: Buffer;
  try {
    signatureBytes = decodeBase64(signature);
    message = signedBytes(obj);
  } catch {
    return false;
  }
  return verifySignature(publicKey, message, signatureBytes);
}

/** The Base64 signature stored at signatures[entityName][keyId], if there is a string there. */
export function signatureOf(obj: object, entityName: string, keyId: string): string | undefined {
  const signatures: unknown = (obj as Record<string, unknown>).signatures;
  if (!isPlainRecord(signatures) || !Object.hasOwn(signatures, entityName)) return undefined;
  const byKey = signatures[entityName];
  if (!isPlainRecord(byKey) || !Object.hasOwn(byKey, keyId)) return undefined;
  const signature = byKey[keyId];
  return typeof signature === 'string' ? signature : undefined;
}

function existingSignatures(obj: object): Signatures {
  const signatures: unknown = (obj as Record<string, unknown>).signatures;
  if (signatures === undefined) return {};
  if (!isPlainRecord(signatures) || !Object.values(signatures).every(isPlainRecord)) {
    throw new TypeError('cannot sign: the existing "signatures" is not an object of objects');
  }
  return signatures as Signatures;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
