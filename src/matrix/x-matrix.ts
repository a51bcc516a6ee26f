// Federation request authentication (server-server API "Request Authentication"): the sender signs
// {method, uri, origin, destination, content?} and sends the signature in an Authorization header.
//
// MSC4100 (matrix-org/matrix-spec-proposals, proposals/4100-scoped-signing-keys.md, "Backwards
// compatibility: requests"): the X-Matrix scheme is duplicated as `X-Matrix-Scoped`, unstable name
// `X-MSC4100-Scoped`, for keys published with scope "m.requests" at /_matrix/key/unstable/org.matrix.msc4100/server.
// The header grammar and the signed JSON are unchanged (no scope field is signed); only the scheme name
// and which keys may verify it differ. A request carrying both schemes must be valid in each.
import { encodeBase64 } from './base64.js';
import { type Signer } from './ed25519.js';
import { MatrixError } from './errors.js';
import { isValidServerName } from './server-name.js';
import { signedBytes, verifyJsonSignature } from './signed-json.js';

export const X_MATRIX_SCHEME = 'X-Matrix';
export const MSC4100_SCOPED_SCHEME = 'X-MSC4100-Scoped';
export const MATRIX_SCOPED_SCHEME = 'X-Matrix-Scoped';

/** MSC4100: only keys with this scope may sign requests, and the keys this service holds sign nothing else. */
export const REQUESTS_SCOPE = 'm.requests';

export interface FederationRequest {
  readonly method: string;
  /** The raw request target as sent: path and query, starting with /_matrix/. */
  readonly uri: string;
  readonly origin: string;
  readonly destination: string;
  /** The parsed JSON body; left out of the signed JSON when absent. */
  readonly content?: unknown;
}

export interface ParsedAuthorization {
  /** The scheme name as the caller asked for it. */
  readonly scheme: string;
  readonly origin: string;
  /** Absent when an old sender left it out; the spec asks receivers to accept that. */
  readonly destination?: string;
  /** key id → unpadded Base64 signature, merged from every header of the scheme. */
  readonly signatures: Readonly<Record<string, string>>;
}

const KEY_ID = /^[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_.+=-]{1,128}$/;
const SIGNATURE = /^[A-Za-z0-9+/_-]{1,200}={0,2}$/;
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/** The object a federation request signature covers. */
export function requestSigningJson(request: FederationRequest): Record<string, unknown> {
  const json: Record<string, unknown> = {
    method: request.method,
    uri: request.uri,
    origin: request.origin,
    destination: request.destination,
  };
  // The reference code adds content only "if content is not None".
  if (request.content !== undefined && request.content !== null) json.content = request.content;
  return json;
}

/** `X-Matrix origin="…",destination="…",key="…",sig="…"`, in the exact form the spec asks senders to use. */
export function buildAuthorizationHeader(
  request: FederationRequest,
  keyId: string,
  signer: Signer,
  scheme: string = X_MATRIX_SCHEME,
): string {
  for (const name of [request.origin, request.destination]) {
    if (!isValidServerName(name)) throw new RangeError(`cannot sign a request for invalid server name ${JSON.stringify(name)}`);
  }
  if (!KEY_ID.test(keyId) || !keyId.startsWith('ed25519:')) throw new RangeError(`cannot sign with key id ${JSON.stringify(keyId)}`);
  const sig = encodeBase64(signer.sign(signedBytes(requestSigningJson(request))));
  return `${scheme} origin="${request.origin}",destination="${request.destination}",key="${keyId}",sig="${sig}"`;
}

/** True when `signature` is `publicKey`'s signature of the request under `keyId`. */
export function verifyRequestSignature(
  request: FederationRequest,
  keyId: string,
  signature: string,
  publicKey: Uint8Array,
): boolean {
  const signed = { ...requestSigningJson(request), signatures: { [request.origin]: { [keyId]: signature } } };
  return verifyJsonSignature(signed, request.origin, keyId, publicKey);
}

/**
 * Every Authorization value in Node's `rawHeaders` (name/value pairs). Node keeps only the first
 * `Authorization` in `req.headers`, but a sender may send one header per signing key.
 */
export function authorizationHeaderValues(rawHeaders: readonly string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'authorization') values.push(rawHeaders[i + 1]!);
  }
  return values;
}

/**
 * Reads every Authorization value using `scheme` (case-insensitive) and merges their key/sig pairs,
 * as Synapse does. Returns null when no value uses the scheme, so the caller can answer 401.
 * Throws MatrixError 400 M_UNAUTHORIZED for anything malformed or contradictory.
 */
export function parseAuthorization(headerValues: readonly string[], scheme: string = X_MATRIX_SCHEME): ParsedAuthorization | null {
  let origin: string | undefined;
  let destination: string | undefined;
  const signatures: Record<string, string> = {};
  for (const value of headerValues) {
    const params = paramsOfScheme(value, scheme);
    if (params === null) continue;
    const header = validatedParams(params, scheme);
    if (origin !== undefined && origin !== header.origin) throw malformed(scheme, 'headers disagree on origin');
    origin = header.origin;
    if (header.destination !== undefined) {
      if (destination !== undefined && destination !== header.destination) throw malformed(scheme, 'headers disagree on destination');
      destination = header.destination;
    }
    const previous = signatures[header.key];
    if (previous !== undefined && previous !== header.sig) throw malformed(scheme, `two different signatures for key ${header.key}`);
    signatures[header.key] = header.sig;
  }
  if (origin === undefined) return null;
  return destination === undefined ? { scheme, origin, signatures } : { scheme, origin, destination, signatures };
}

interface HeaderParams {
  origin: string;
  destination?: string;
  key: string;
  sig: string;
}

function validatedParams(params: Map<string, string>, scheme: string): HeaderParams {
  const origin = params.get('origin');
  const destination = params.get('destination');
  const key = params.get('key');
  const sig = params.get('sig');
  if (origin === undefined) throw malformed(scheme, 'missing origin');
  if (key === undefined) throw malformed(scheme, 'missing key');
  if (sig === undefined) throw malformed(scheme, 'missing sig');
  if (!isValidServerName(origin)) throw malformed(scheme, 'origin is not a valid server name');
  if (destination !== undefined && !isValidServerName(destination)) throw malformed(scheme, 'destination is not a valid server name');
  if (!KEY_ID.test(key)) throw malformed(scheme, 'key is not a key id of the form algorithm:version');
  if (!SIGNATURE.test(sig)) throw malformed(scheme, 'sig is not Base64');
  return destination === undefined ? { origin, key, sig } : { origin, destination, key, sig };
}

const KNOWN_PARAMS: Readonly<Record<string, string>> = {
  origin: 'origin',
  destination: 'destination',
  key: 'key',
  sig: 'sig',
  signature: 'sig', // the spec's parameter list says "signature"; its example and every peer say "sig"
};

/** The known params (lower-cased names) of a credentials value, or null when it uses another scheme. */
function paramsOfScheme(value: string, scheme: string): Map<string, string> | null {
  let i = skipWhitespace(value, 0);
  const schemeStart = i;
  while (i < value.length && TOKEN_CHAR.test(value[i]!)) i++;
  if (value.slice(schemeStart, i).toLowerCase() !== scheme.toLowerCase()) return null;
  if (i < value.length && !isWhitespace(value[i]!)) throw malformed(scheme, 'the scheme must be followed by a space');

  const params = new Map<string, string>();
  let first = true;
  for (;;) {
    let sawComma = false;
    while (i < value.length && (isWhitespace(value[i]!) || value[i] === ',')) {
      if (value[i] === ',') sawComma = true;
      i++;
    }
    if (i >= value.length) break;
    if (!first && !sawComma) throw malformed(scheme, `expected "," at position ${i}`);
    first = false;

    const nameStart = i;
    while (i < value.length && TOKEN_CHAR.test(value[i]!)) i++;
    if (i === nameStart) throw malformed(scheme, `expected a parameter name at position ${i}`);
    const name = value.slice(nameStart, i).toLowerCase();
    i = skipWhitespace(value, i);
    if (value[i] !== '=') throw malformed(scheme, `expected "=" after parameter ${name}`);
    i = skipWhitespace(value, i + 1);
    const parsed = value[i] === '"' ? readQuoted(value, i, scheme) : readUnquoted(value, i, scheme, name);
    i = parsed.end;

    const known = Object.hasOwn(KNOWN_PARAMS, name) ? KNOWN_PARAMS[name]! : undefined;
    if (known === undefined) continue; // "Unknown parameters are ignored."
    if (params.has(known)) throw malformed(scheme, `duplicate parameter ${known}`);
    params.set(known, parsed.text);
  }
  return params;
}

/** A quoted-string starting at `start` (the opening quote), with `\x` unescaped to `x`. */
function readQuoted(value: string, start: number, scheme: string): { text: string; end: number } {
  let text = '';
  for (let i = start + 1; i < value.length; i++) {
    const char = value[i]!;
    if (char === '"') return { text, end: i + 1 };
    if (char === '\\') {
      i++;
      if (i >= value.length) break;
      if (!isQuotedTextChar(value.charCodeAt(i))) throw malformed(scheme, 'control character in a quoted value');
      text += value[i];
    } else if (isQuotedTextChar(value.charCodeAt(i))) {
      text += char;
    } else {
      throw malformed(scheme, 'control character in a quoted value');
    }
  }
  throw malformed(scheme, 'unterminated quoted value');
}

// Lenient token: any visible ASCII but the list and quoting delimiters, so `key=ed25519:abc` and
// Base64 signatures with "/", "+" and "=" pass unquoted.
function readUnquoted(value: string, start: number, scheme: string, name: string): { text: string; end: number } {
  let i = start;
  while (i < value.length && isUnquotedChar(value.charCodeAt(i))) i++;
  if (i === start) throw malformed(scheme, `missing value for parameter ${name}`);
  return { text: value.slice(start, i), end: i };
}

function isUnquotedChar(code: number): boolean {
  return code >= 0x21 && code <= 0x7e && code !== 0x22 && code !== 0x2c && code !== 0x5c;
}

// RFC 9110 qdtext and quoted-pair: HTAB, SP, visible ASCII, obs-text.
function isQuotedTextChar(code: number): boolean {
  return code === 0x09 || (code >= 0x20 && code <= 0x7e) || (code >= 0x80 && code <= 0xff);
}

function isWhitespace(char: string): boolean {
  return char === ' ' || char === '\t';
}

function skipWhitespace(value: string, i: number): number {
  while (i < value.length && isWhitespace(value[i]!)) i++;
  return i;
}

function malformed(scheme: string, reason: string): MatrixError {
  return new MatrixError(400, 'M_UNAUTHORIZED', `Malformed ${scheme} Authorization header: ${reason}`);
}
