// GET https://<hostname>/.well-known/matrix/server (server-server API "Resolving server names", step 3),
// cached as the spec asks: Cache-Control respected, 24 h by default, at most 48 h; failures for up to
// 1 h with exponential back-off. Concurrent lookups of one host share one request.
import { parseServerName } from '../matrix/server-name.js';
import { readLimited, type OutboundHttp, type Response, type Timeouts } from './http.js';

export const WELL_KNOWN_DEFAULT_TTL_MS = 24 * 3600_000;
export const WELL_KNOWN_MAX_TTL_MS = 48 * 3600_000;
/** A response saying "do not cache" would otherwise mean one extra HTTPS request per federation request. */
export const WELL_KNOWN_MIN_TTL_MS = 5 * 60_000;
export const WELL_KNOWN_ERROR_BASE_TTL_MS = 2 * 60_000;
export const WELL_KNOWN_ERROR_MAX_TTL_MS = 3600_000;
export const WELL_KNOWN_MAX_BYTES = 50 * 1024;
export const WELL_KNOWN_MAX_REDIRECTS = 5;

/** The delegated server name, or why there is none (discovery then goes on without it). */
export type WellKnownResult = { readonly delegated: string } | { readonly error: string };

interface Entry {
  readonly result: WellKnownResult;
  readonly expiresAt: number;
  /** Consecutive failures, for the back-off. */
  readonly failures: number;
}

export interface WellKnownOptions {
  http: OutboundHttp;
  timeouts: Timeouts;
  /** 443 but in tests. */
  port?: number;
  now?: () => number;
}

export class WellKnownCache {
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<WellKnownResult>>();
  private readonly now: () => number;

  constructor(private readonly options: WellKnownOptions) {
    this.now = options.now ?? Date.now;
  }

  lookup(hostname: string): Promise<WellKnownResult> {
    const entry = this.entries.get(hostname);
    if (entry && entry.expiresAt > this.now()) return Promise.resolve(entry.result);
    let pending = this.pending.get(hostname);
    if (!pending) {
      pending = this.refresh(hostname, entry?.failures ?? 0).finally(() => this.pending.delete(hostname));
      this.pending.set(hostname, pending);
    }
    return pending;
  }

  private async refresh(hostname: string, failures: number): Promise<WellKnownResult> {
    const outcome = await this.fetch(hostname).then(
      (fetched) => fetched,
      (error: unknown) => ({ result: { error: error instanceof Error ? error.message : String(error) }, ttlMs: undefined }),
    );
    const now = this.now();
    if ('delegated' in outcome.result) {
      this.entries.set(hostname, { result: outcome.result, expiresAt: now + outcome.ttlMs!, failures: 0 });
    } else {
      const ttl = Math.min(WELL_KNOWN_ERROR_MAX_TTL_MS, WELL_KNOWN_ERROR_BASE_TTL_MS * 2 ** failures);
      this.entries.set(hostname, { result: outcome.result, expiresAt: now + ttl, failures: failures + 1 });
    }
    return outcome.result;
  }

  private async fetch(hostname: string): Promise<{ result: WellKnownResult; ttlMs: number | undefined }> {
    const url = new URL(`https://${hostname}/.well-known/matrix/server`);
    url.port = String(this.options.port ?? 443); // 443 is the default port, so the URL leaves it out
    const response = await this.options.http.fetchUrl(url, { timeouts: this.options.timeouts, maxRedirects: WELL_KNOWN_MAX_REDIRECTS });
    if (response.status !== 200) {
      response.body.resume();
      return { result: { error: `/.well-known/matrix/server answered ${response.status}` }, ttlMs: undefined };
    }
    const body = await readLimited(response.body, { maxBytes: WELL_KNOWN_MAX_BYTES, idleMs: this.options.timeouts.headersMs }, '.well-known response');
    return { result: parseWellKnown(body), ttlMs: cacheTtl(response) };
  }
}

/** The body is JSON whatever its Content-Type says (wellknown.yaml). */
export function parseWellKnown(body: Buffer): WellKnownResult {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { error: '/.well-known/matrix/server is not JSON' };
  }
  const server = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>)['m.server'] : undefined;
  if (typeof server !== 'string') return { error: '/.well-known/matrix/server has no "m.server" string' };
  if (parseServerName(server) === null) return { error: `/.well-known/matrix/server delegates to an invalid server name` };
  return { delegated: server };
}

/** How long a good answer is kept: max-age (or 0 for no-store/no-cache) within [5 min, 48 h], else 24 h. */
export function cacheTtl(response: Pick<Response, 'headers'>): number {
  const header = response.headers['cache-control'];
  if (header === undefined) return WELL_KNOWN_DEFAULT_TTL_MS;
  const directives = header.toLowerCase().split(',').map((d) => d.trim());
  let seconds: number | undefined;
  if (directives.includes('no-store') || directives.includes('no-cache')) seconds = 0;
  for (const directive of directives) {
    const match = /^max-age\s*=\s*"?(\d+)"?$/.exec(directive);
    if (match && seconds === undefined) seconds = Number(match[1]);
  }
  if (seconds === undefined) return WELL_KNOWN_DEFAULT_TTL_MS;
  return Math.min(WELL_KNOWN_MAX_TTL_MS, Math.max(WELL_KNOWN_MIN_TTL_MS, seconds * 1000));
}
