// Outbound HTTP(S) for federation: every connection goes through the IP filter (at connect time), the
// TLS certificate is checked against the name discovery expects (not the SRV target), and every phase
// has a deadline. Redirects are followed by hand so each hop is checked again.
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import type { Dns } from './dns.js';
import { BlockedAddressError, type IpFilter } from './ip-filter.js';

export interface Endpoint {
  /** Host name or IP literal (no brackets) to connect to. */
  readonly host: string;
  readonly port: number;
}

/** Where and how to send a request: the outcome of server discovery, or of a plain URL. */
export interface Target {
  readonly protocol: 'https:' | 'http:';
  /** Tried in order until one accepts the connection (SRV priority/weight order). */
  readonly endpoints: readonly Endpoint[];
  readonly hostHeader: string;
  /** Name the certificate must be valid for, also sent as SNI; undefined: the endpoint's IP, without SNI. */
  readonly tlsServername: string | undefined;
  /** Configured by the admin (federation.serverOverrides): not subject to the IP filter. */
  readonly trusted?: boolean;
}

export interface Timeouts {
  /** TCP and TLS handshake. */
  readonly connectMs: number;
  /** From sending the request to the response headers. */
  readonly headersMs: number;
}

export interface RequestSpec {
  readonly method?: 'GET' | 'POST';
  /** Request target: path and query. */
  readonly path: string;
  /** An array value sends the header once per element (several Authorization schemes). */
  readonly headers?: Readonly<Record<string, string | string[]>>;
  readonly body?: Buffer;
  readonly timeouts: Timeouts;
}

export interface Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Unread; the caller reads it (see limitedBody) or destroys it. */
  readonly body: Readable;
  readonly target: Target;
  readonly path: string;
  /** The request URL as the remote sees it, to resolve relative URLs against. */
  readonly url: URL;
}

export type UpstreamErrorKind = 'unreachable' | 'timeout' | 'blocked' | 'too-large' | 'bad-response' | 'truncated';

/** Anything that went wrong talking to a remote server, classified for the Matrix error it becomes. */
export class UpstreamError extends Error {
  constructor(readonly kind: UpstreamErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamError';
  }
}

export interface OutboundHttpOptions {
  dns: Dns;
  filter: IpFilter;
  /** Extra trusted CA certificates (PEM), added to Node's bundled roots. */
  extraCa?: string;
  userAgent?: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** How a reused idle connection fails when the server closed it meanwhile ("socket hang up" is ECONNRESET). */
const STALE_SOCKET = new Set(['ECONNRESET', 'EPIPE']);

export class OutboundHttp {
  private readonly filter: IpFilter;
  private readonly agents: Record<'filtered' | 'trusted', { 'http:': HttpAgent; 'https:': HttpsAgent }>;
  private readonly userAgent: string;

  constructor(options: OutboundHttpOptions) {
    this.filter = options.filter;
    this.userAgent = options.userAgent ?? 'matrix-media-repo-ts';
    const ca = options.extraCa ? [...rootCertificates, options.extraCa] : undefined;
    // Separate pools, so a socket opened for a trusted override is never reused for a filtered request.
    const agents = (lookup: ReturnType<Dns['filteredLookup']>) => ({
      'http:': new HttpAgent({ keepAlive: true, lookup }),
      'https:': new HttpsAgent({ keepAlive: true, lookup, ca }),
    });
    this.agents = { filtered: agents(options.dns.filteredLookup(options.filter)), trusted: agents(options.dns.filteredLookup(null)) };
  }

  /** Sends one request, trying each endpoint in turn while connections fail; never follows redirects. */
  async request(target: Target, spec: RequestSpec): Promise<Response> {
    let lastError: unknown;
    for (const endpoint of target.endpoints) {
      try {
        return await this.requestEndpoint(target, endpoint, spec);
      } catch (error) {
        // Only a failure to connect moves on; a timeout waiting for headers means the server is there but slow.
        if (!(error instanceof UpstreamError) || (error.kind !== 'unreachable' && error.kind !== 'blocked')) throw error;
        lastError = error;
      }
    }
    throw lastError ?? new UpstreamError('unreachable', 'no endpoint to connect to');
  }

  /**
   * GETs `url`, following up to `maxRedirects` redirects (each hop checked like the first, loops refused).
   * When `base` is given, URLs on the same origin as `base.url` reuse its target (same endpoint and names).
   */
  async fetchUrl(url: URL, spec: Omit<RequestSpec, 'path' | 'method' | 'body'> & { maxRedirects: number }, base?: Response): Promise<Response> {
    const seen = new Set<string>();
    let current = url;
    for (let hop = 0; ; hop++) {
      if (current.protocol !== 'https:' && current.protocol !== 'http:') throw new UpstreamError('bad-response', `cannot fetch a ${current.protocol} URL`);
      if (seen.has(current.href)) throw new UpstreamError('bad-response', `redirect loop at ${current.origin}${current.pathname}`);
      seen.add(current.href);
      const sameOrigin = base !== undefined && current.origin === base.url.origin;
      const target = sameOrigin ? base.target : targetForUrl(current);
      const response = await this.request(target, { path: `${current.pathname}${current.search}`, headers: spec.headers, timeouts: spec.timeouts });
      const location = response.headers.location;
      if (!REDIRECTS.has(response.status) || location === undefined) return response;
      response.body.resume(); // drain the redirect body so the socket can be reused
      if (hop >= spec.maxRedirects) throw new UpstreamError('bad-response', `more than ${spec.maxRedirects} redirects`);
      try {
        current = new URL(location, current);
      } catch {
        throw new UpstreamError('bad-response', 'a redirect has an invalid Location');
      }
    }
  }

  close(): void {
    for (const pool of Object.values(this.agents)) {
      pool['http:'].destroy();
      pool['https:'].destroy();
    }
  }

  private requestEndpoint(target: Target, endpoint: Endpoint, spec: RequestSpec, retryStale = true): Promise<Response> {
    // Host names are checked by the agents' lookup once resolved; IP literals skip lookup, so here.
    if (!target.trusted && isIP(endpoint.host)) {
      try {
        this.filter.assertAllowed(endpoint.host);
      } catch (error) {
        return Promise.reject(blocked(error as BlockedAddressError));
      }
    }
    const tls = target.protocol === 'https:';
    const url = new URL(`${target.protocol}//${target.hostHeader}${spec.path}`);
    return new Promise<Response>((resolve, reject) => {
      const headers: Record<string, string | string[]> = { 'User-Agent': this.userAgent, ...spec.headers, Host: target.hostHeader };
      if (spec.body) headers['Content-Length'] = String(spec.body.length);
      const options = {
        method: spec.method ?? 'GET', host: endpoint.host, port: endpoint.port, path: spec.path, headers,
        agent: this.agents[target.trusted ? 'trusted' : 'filtered'][target.protocol],
        // '' (not undefined) stops Node from deriving SNI from the Host header: no SNI for IP certificates.
        ...(tls ? { servername: target.tlsServername ?? '' } : {}),
      };
      const req = (tls ? httpsRequest : httpRequest)(options);
      let connected = false;
      let responded = false;
      const disarm = () => {
        clearTimeout(connectTimer);
        clearTimeout(headersTimer);
      };
      const fail = (error: UpstreamError) => {
        disarm();
        req.destroy(error);
      };
      const connectTimer = setTimeout(() => fail(new UpstreamError('unreachable', `connecting to ${endpoint.host}:${endpoint.port} timed out`)), spec.timeouts.connectMs);
      const headersTimer = setTimeout(() => fail(new UpstreamError('timeout', `${target.hostHeader} did not answer within ${spec.timeouts.headersMs} ms`)), spec.timeouts.headersMs);
      const onConnected = () => {
        connected = true;
        clearTimeout(connectTimer);
      };
      req.once('socket', (socket) => (socket.connecting ? socket.once(tls ? 'secureConnect' : 'connect', onConnected) : onConnected()));
      req.once('response', (res) => {
        responded = true;
        disarm();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, target, path: spec.path, url });
      });
      req.once('error', (error) => {
        disarm();
        // A kept-alive connection the server closed just as we reused it: once more on a fresh one (we only read).
        if (retryStale && !responded && req.reusedSocket && STALE_SOCKET.has((error as NodeJS.ErrnoException).code ?? '')) {
          resolve(this.requestEndpoint(target, endpoint, spec, false));
          return;
        }
        reject(classify(error, connected, `${endpoint.host}:${endpoint.port}`));
      });
      req.end(spec.body);
    });
  }
}

/** The target of a plain URL: its host, its port (or the scheme's), certificate for its host name. */
export function targetForUrl(url: URL): Target {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return {
    protocol: url.protocol === 'http:' ? 'http:' : 'https:',
    endpoints: [{ host, port }],
    hostHeader: url.host,
    tlsServername: isIP(host) ? undefined : host,
  };
}

function blocked(error: BlockedAddressError): UpstreamError {
  return new UpstreamError('blocked', error.message, { cause: error });
}

function classify(error: Error, connected: boolean, where: string): UpstreamError {
  if (error instanceof UpstreamError) return error;
  if (error instanceof BlockedAddressError) return blocked(error);
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (!connected) return new UpstreamError('unreachable', `cannot connect to ${where}: ${code || error.message}`, { cause: error });
  return new UpstreamError('bad-response', `connection to ${where} failed: ${code || error.message}`, { cause: error });
}

export interface BodyLimits {
  readonly maxBytes: number;
  /** Longest wait for the next bytes while the reader wants more. */
  readonly idleMs: number;
}

/**
 * The response body as a stream that fails with UpstreamError when it grows past `maxBytes` (at once when
 * Content-Length says so), stalls for `idleMs`, or ends early. Destroying it closes the connection.
 */
export function limitedBody(res: Readable, limits: BodyLimits, what = 'response', headers?: IncomingHttpHeaders): Readable {
  const declared = Number((headers ?? (res as Partial<IncomingMessage>).headers)?.['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limits.maxBytes) {
    res.destroy();
    throw new UpstreamError('too-large', `the ${what} is ${declared} bytes, more than the limit of ${limits.maxBytes}`);
  }
  let total = 0;
  let ended = false;
  let timer: NodeJS.Timeout | undefined;
  const disarm = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  const arm = () => {
    if (timer) timer.refresh();
    else timer = setTimeout(() => out.destroy(new UpstreamError('timeout', `the ${what} stalled for ${limits.idleMs} ms`)), limits.idleMs);
  };
  const out = new Readable({
    // A few network chunks ahead of the reader: the connection is not paused and resumed for each one.
    highWaterMark: 1024 * 1024,
    read() {
      if (ended) return;
      res.resume();
      arm();
    },
    destroy(error, callback) {
      disarm();
      res.destroy();
      callback(error);
    },
  });
  res.pause();
  res.on('data', (chunk: Buffer) => {
    total += chunk.length;
    if (total > limits.maxBytes) {
      out.destroy(new UpstreamError('too-large', `the ${what} is larger than the limit of ${limits.maxBytes} bytes`));
      return;
    }
    if (out.push(chunk)) arm();
    else {
      disarm();
      res.pause();
    }
  });
  // An IncomingMessage cut off mid-body errors and closes without 'end' (a close-delimited body ends).
  res.once('end', () => {
    ended = true;
    disarm();
    out.push(null);
  });
  res.once('error', (error) => out.destroy(new UpstreamError('truncated', `the ${what} was cut off: ${error.message}`, { cause: error })));
  res.once('close', () => {
    if (!ended) out.destroy(new UpstreamError('truncated', `the ${what} was cut off`));
  });
  return out;
}

/** The whole body of a small response (JSON), within `limits`. */
export async function readLimited(res: Readable, limits: BodyLimits, what?: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of limitedBody(res, limits, what)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
