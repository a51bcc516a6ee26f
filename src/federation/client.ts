// Requests to other homeservers: discovery, the IP filter and deadlines from OutboundHttp, and the
// Authorization header signed with the requesting homeserver's own key.
//
// MSC4100 (proposals/4100-scoped-signing-keys.md, "Backwards compatibility: requests"): X-Matrix is left to
// legacy all-purpose keys and scoped keys sign `X-Matrix-Scoped` (unstable: X-MSC4100-Scoped). Servers
// "should use both in independent Authorization headers if possible, or otherwise downgrade their requests
// to X-Matrix if an auth error is received for X-Matrix-Scoped alone". What the homeserver publishes
// decides (auth-schemes.ts): with our key in its /_matrix/key/v2/server, X-Matrix (plus X-MSC4100-Scoped
// where the MSC4100 endpoint lists it with m.requests), so no peer ever refuses the first request.
// Otherwise X-MSC4100-Scoped alone first; on an auth error, the same request once more signed with
// X-Matrix by the same key. A destination that needed the downgrade gets X-Matrix directly for
// DOWNGRADE_MEMORY_MS, then is offered the scoped scheme again.
import { Readable } from 'node:stream';
import type { NotaryConfig } from '../config/config.js';
import type { ActiveSigningKey } from '../keys/signing-key-store.js';
import type { Logger } from '../log.js';
import { buildAuthorizationHeader, MSC4100_SCOPED_SCHEME, REQUESTS_SCOPE, X_MATRIX_SCHEME } from '../matrix/x-matrix.js';
import type { ServerResolver } from './discovery.js';
import { readLimited, targetForUrl, UpstreamError, type OutboundHttp, type Response, type Timeouts } from './http.js';

export const DOWNGRADE_MEMORY_MS = 3600_000;
/** Error bodies are read to find the errcode; nobody needs more than this to say it. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;
export const MAX_JSON_BYTES = 1024 * 1024;
const MAX_REDIRECTS = 5;

export interface SigningKeySource {
  activeKey(serverName: string): Promise<ActiveSigningKey | undefined>;
}

/** x-matrix: X-Matrix alone; x-matrix+scoped: X-Matrix and X-MSC4100-Scoped; scoped-first: X-MSC4100-Scoped, downgraded on refusal. */
export type AuthScheme = 'x-matrix' | 'x-matrix+scoped' | 'scoped-first';

export interface AuthSchemeSource {
  /** Undefined when not known: scoped-first. */
  schemeFor(origin: string): Promise<AuthScheme | undefined>;
}

export interface FederationClientOptions {
  resolver: ServerResolver;
  http: OutboundHttp;
  signingKeys: SigningKeySource;
  schemes?: AuthSchemeSource;
  log: Logger;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  now?: () => number;
}

export interface FederationGetOptions {
  /** The hosted homeserver the request is made for; with `signed`, its key signs the request. */
  origin?: string;
  signed: boolean;
  /** Deadline for the response headers; default requestTimeoutMs. */
  timeoutMs?: number;
}

/** A remote server's non-2xx answer, with the errcode when its body was Matrix error JSON. */
export class RemoteHttpError extends Error {
  constructor(readonly status: number, readonly errcode: string | undefined, readonly body: unknown, message: string) {
    super(message);
    this.name = 'RemoteHttpError';
  }
}

/** The tenant has no signing key: it cannot make authenticated federation requests. */
export class NoSigningKeyError extends Error {
  constructor(readonly origin: string) {
    super(`homeserver ${origin} has no signing key`);
    this.name = 'NoSigningKeyError';
  }
}

export class FederationClient {
  private readonly downgraded = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: FederationClientOptions) {
    this.now = options.now ?? Date.now;
  }

  /** GET `path` (path and query, as signed) on `serverName`; the body is left unread for the caller. */
  async get(serverName: string, path: string, options: FederationGetOptions): Promise<Response> {
    const resolved = await this.options.resolver.resolveServerName(serverName);
    const timeouts = this.timeouts(options.timeoutMs);
    if (!options.signed) return this.options.http.request(resolved, { path, timeouts });
    if (options.origin === undefined) throw new TypeError('a signed request needs an origin');
    const key = await this.options.signingKeys.activeKey(options.origin);
    if (!key) throw new NoSigningKeyError(options.origin);
    const send = (...schemes: string[]) => {
      const sign = (scheme: string) => buildAuthorizationHeader({ method: 'GET', uri: path, origin: key.serverName, destination: serverName }, key.keyId, key.signer, scheme);
      return this.options.http.request(resolved, { path, timeouts, headers: { Authorization: schemes.map(sign) } });
    };
    const published = await this.options.schemes?.schemeFor(options.origin);
    if (published === 'x-matrix+scoped') return send(X_MATRIX_SCHEME, MSC4100_SCOPED_SCHEME);
    if (published === 'x-matrix' || !key.scope.includes(REQUESTS_SCOPE) || this.isDowngraded(serverName)) return send(X_MATRIX_SCHEME);
    const scoped = await send(MSC4100_SCOPED_SCHEME);
    const refusal = await readRefusal(scoped);
    if (refusal === undefined) return scoped;
    if (!refusal.authError) return { ...scoped, body: Readable.from([refusal.body]) };
    this.downgraded.set(serverName, this.now() + DOWNGRADE_MEMORY_MS);
    this.options.log.info({ destination: serverName, status: scoped.status }, `${MSC4100_SCOPED_SCHEME} refused: retrying with ${X_MATRIX_SCHEME}`);
    return send(X_MATRIX_SCHEME);
  }

  /** GET a JSON object; a non-2xx answer throws RemoteHttpError. */
  private async getJson(serverName: string, path: string, options: FederationGetOptions & { maxBytes?: number }): Promise<unknown> {
    const response = await this.get(serverName, path, options);
    return this.json(response, options.maxBytes ?? MAX_JSON_BYTES);
  }

  /** POST a JSON body to a URL's origin (unsigned: key queries need no authentication). */
  private async postJsonTo(target: Response['target'], path: string, body: object, maxBytes = MAX_JSON_BYTES): Promise<unknown> {
    const response = await this.options.http.request(target, {
      method: 'POST',
      path,
      body: Buffer.from(JSON.stringify(body), 'utf8'),
      headers: { 'Content-Type': 'application/json' },
      timeouts: this.timeouts(),
    });
    return this.json(response, maxBytes);
  }

  /** An unauthenticated GET of a URL a remote server gave us (Location part, redirect), each hop checked. */
  fetchUrl(url: URL, base?: Response, timeoutMs?: number): Promise<Response> {
    return this.options.http.fetchUrl(url, { timeouts: this.timeouts(timeoutMs), maxRedirects: MAX_REDIRECTS }, base);
  }

  /** For the keyring: GET /_matrix/key/... on a server, through discovery and the IP filter. */
  readonly fetchServerKeysJson = (serverName: string, path: string): Promise<unknown> => this.getJson(serverName, path, { signed: false });

  /**
   * For the keyring: POST a key query to a notary, at its configured URL (trusted like serverOverrides: the
   * admin wrote it) or found by discovery.
   */
  readonly queryNotary = async (notary: NotaryConfig, body: object, path: string): Promise<unknown> => {
    if (notary.url === undefined) return this.postJsonTo(await this.options.resolver.resolveServerName(notary.serverName), path, body);
    const url = new URL(notary.url);
    return this.postJsonTo({ ...targetForUrl(url), trusted: true }, `${url.pathname.replace(/\/+$/, '')}${path}`, body);
  };

  /** Reads a small body as JSON; non-2xx becomes RemoteHttpError. */
  private async json(response: Response, maxBytes: number): Promise<unknown> {
    const text = await readLimited(response.body, { maxBytes, idleMs: this.options.requestTimeoutMs }, 'JSON response');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    if (response.status < 200 || response.status >= 300) throw remoteError(response, parsed);
    if (parsed === undefined) throw new UpstreamError('bad-response', `${response.target.hostHeader} answered with invalid JSON`);
    return parsed;
  }

  /** Closes pooled connections. */
  close(): void {
    this.options.http.close();
  }

  private timeouts(headersMs?: number): Timeouts {
    return { connectMs: this.options.connectTimeoutMs, headersMs: headersMs ?? this.options.requestTimeoutMs };
  }

  private isDowngraded(destination: string): boolean {
    const until = this.downgraded.get(destination);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.downgraded.delete(destination);
    return false;
  }
}

/** RemoteHttpError for a non-2xx answer whose body was (maybe) parsed. */
export function remoteError(response: Response, parsed: unknown): RemoteHttpError {
  const errcode = errcodeOf(parsed);
  return new RemoteHttpError(response.status, errcode, parsed, `${response.target.hostHeader} answered ${response.status}${errcode ? ` ${errcode}` : ''}`);
}

/** A remote's error answer: its first bytes, and their JSON when they are JSON. */
export interface ErrorBody {
  bytes: Buffer;
  isJson: boolean;
  json: unknown;
}

/** Reads an error answer's body (at most MAX_ERROR_BODY_BYTES); a body that cannot be read counts as empty. */
export async function readErrorBody(response: Response): Promise<ErrorBody> {
  const bytes = await readLimited(response.body, { maxBytes: MAX_ERROR_BODY_BYTES, idleMs: 10_000 }, 'error response').catch(() => Buffer.alloc(0));
  try {
    return { bytes, isJson: true, json: JSON.parse(bytes.toString('utf8')) };
  } catch {
    return { bytes, isJson: false, json: undefined };
  }
}

/** The errcode of a Matrix error body, if it is one. */
export function errcodeOf(json: unknown): string | undefined {
  const errcode = typeof json === 'object' && json !== null ? (json as Record<string, unknown>).errcode : undefined;
  return typeof errcode === 'string' ? errcode : undefined;
}

/**
 * For a 400, 401 or 403 answer, its body and whether it refuses our authentication (Synapse: 401
 * M_UNAUTHORIZED for a missing or unknown scheme, 400 M_UNAUTHORIZED for a malformed one, 403 for a key it
 * will not use); undefined for any other status, whose body is left unread.
 */
async function readRefusal(response: Response): Promise<{ authError: boolean; body: Buffer } | undefined> {
  if (response.status !== 400 && response.status !== 401 && response.status !== 403) return undefined;
  const { bytes, json } = await readErrorBody(response);
  const errcode = errcodeOf(json);
  return { authError: response.status === 401 || errcode === 'M_UNAUTHORIZED' || errcode === 'M_FORBIDDEN', body: bytes };
}
