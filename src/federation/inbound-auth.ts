// Authenticating inbound federation requests (server-server API "Request Authentication",
// https://spec.matrix.org/v1.16/server-server-api/#request-authentication, and MSC4100):
// every X-Matrix and X-MSC4100-Scoped signature present must verify against the origin's keys from the
// keyring, the destination must be the hosted homeserver the request reached, and the homeserver's
// allow/deny lists must admit the origin.
import type { HomeserverConfig } from '../config/config.js';
import type { KeyLookupOptions, UsableKey } from '../keys/keyring.js';
import { MatrixError } from '../matrix/errors.js';
import { parseServerName } from '../matrix/server-name.js';
import {
  MATRIX_SCOPED_SCHEME,
  MSC4100_SCOPED_SCHEME,
  parseAuthorization,
  verifyRequestSignature,
  X_MATRIX_SCHEME,
  type ParsedAuthorization,
} from '../matrix/x-matrix.js';
import type { VerifiedRequests } from './verified-requests.js';

export interface KeyLookup {
  verifyKey(serverName: string, keyId: string, options: KeyLookupOptions): Promise<UsableKey | undefined>;
}

export interface InboundRequest {
  readonly method: string;
  /** The request target exactly as received: the signature covers it byte for byte. */
  readonly uri: string;
  /** The hosted homeserver the request reached (by Host, or a trusted proxy's X-Forwarded-Host). */
  readonly tenant: HomeserverConfig;
  /** Every Authorization header value, in order. */
  readonly authorization: readonly string[];
  /** The parsed JSON body, only when the request has one. */
  readonly content?: unknown;
}

export interface AuthenticatedRequest {
  readonly origin: string;
  /** The hosted homeserver the request is for. */
  readonly tenant: HomeserverConfig;
  /** The schemes whose signatures were verified. */
  readonly schemes: readonly string[];
}

/** MSC4100's unstable name, and the stable one it takes after FCP: both accepted, both need m.requests keys. */
const SCOPED_SCHEMES = [MSC4100_SCOPED_SCHEME, MATRIX_SCOPED_SCHEME];

const unauthorized = (message: string) => new MatrixError(401, 'M_UNAUTHORIZED', message);
const malformed = (message: string) => new MatrixError(400, 'M_UNAUTHORIZED', message);

/** `verified`: successful verifications to remember, for requests without a body. */
export async function authenticateRequest(keyring: KeyLookup, request: InboundRequest, verified?: VerifiedRequests): Promise<AuthenticatedRequest> {
  const headers = [X_MATRIX_SCHEME, ...SCOPED_SCHEMES].map((scheme) => parseAuthorization(request.authorization, scheme))
    .filter((h): h is ParsedAuthorization => h !== null);
  if (headers.length === 0) throw unauthorized('Missing X-Matrix Authorization header');
  const origin = headers[0]!.origin;
  if (headers.some((h) => h.origin !== origin)) throw malformed('The Authorization headers disagree on origin');
  const destinations = new Set(headers.flatMap((h) => (h.destination === undefined ? [] : [h.destination])));
  if (destinations.size > 1) throw malformed('The Authorization headers disagree on destination');

  const tenant = request.tenant;
  const destination = [...destinations][0];
  // Old senders name no destination: the homeserver the request reached is the one it was for.
  if (destination !== undefined && destination !== tenant.name) {
    throw unauthorized(`The destination ${destination} is not the homeserver this request was sent to`);
  }
  checkOriginAllowed(tenant, origin);

  const authenticated = { origin, tenant, schemes: headers.map((h) => h.scheme) };
  const signed = { method: request.method, uri: request.uri, origin, destination: tenant.name, authorization: request.authorization };
  const cacheable = verified !== undefined && request.content === undefined;
  if (cacheable && verified.has(signed)) return authenticated;
  const validUntil = await Promise.all(headers.map((header) => verifySignatures(keyring, header, { ...signed, content: request.content })));
  if (cacheable) verified.remember(signed, Math.min(...validUntil));
  return authenticated;
}

function checkOriginAllowed(tenant: HomeserverConfig, origin: string): void {
  const { allowOrigins, denyOrigins } = tenant.federation;
  const denied = denyOrigins.some((p) => originMatches(p, origin))
    || (allowOrigins.length > 0 && !allowOrigins.some((p) => originMatches(p, origin)));
  if (denied) throw new MatrixError(403, 'M_FORBIDDEN', `Federation with ${origin} is not allowed`);
}

/**
 * Glob match of an allow/deny pattern against a server name, case-insensitively; `*` matches any run of
 * characters. A pattern without a port also matches the name on any port.
 */
export function originMatches(pattern: string, origin: string): boolean {
  const regex = patternRegExp(pattern);
  if (regex.test(origin)) return true;
  const parsed = parseServerName(origin);
  if (parsed?.port === undefined) return false;
  return regex.test(parsed.kind === 'ipv6' ? `[${parsed.hostname}]` : parsed.hostname);
}

// Patterns come from the config, so this stays as small as the allow/deny lists; compiled once, not per request.
const compiledPatterns = new Map<string, RegExp>();

function patternRegExp(pattern: string): RegExp {
  let regex = compiledPatterns.get(pattern);
  if (!regex) {
    regex = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`, 'i');
    compiledPatterns.set(pattern, regex);
  }
  return regex;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Every signature of the header verified: until when the keys that did it are valid. */
async function verifySignatures(keyring: KeyLookup, header: ParsedAuthorization, request: Parameters<typeof verifyRequestSignature>[0]): Promise<number> {
  const scoped = SCOPED_SCHEMES.includes(header.scheme);
  const validUntil = await Promise.all(Object.entries(header.signatures).map(async ([keyId, signature]) => {
    const key = keyId.startsWith('ed25519:') ? await keyring.verifyKey(request.origin, keyId, { scoped }) : undefined;
    if (!key) throw unauthorized(`No usable ${scoped ? 'm.requests-scoped ' : ''}key ${keyId} of ${request.origin} to check the ${header.scheme} signature`);
    if (!verifyRequestSignature(request, keyId, signature, key.publicKey)) throw unauthorized(`The ${header.scheme} signature by ${keyId} does not verify`);
    return key.validUntilTs;
  }));
  return Math.min(...validUntil);
}
