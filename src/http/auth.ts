// Client access tokens: a homeserver's static tokens first, else checked against the caller's homeserver
// (GET /account/whoami), cached briefly.
import { hash } from 'node:crypto';
import type { Request } from 'express';
import got, { type Response as GotResponse } from 'got';
import type { Config, HomeserverConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { LruCache, type CacheLookups } from '../lru-cache.js';
import { forbidden, MatrixError } from '../matrix/errors.js';
import { authorizationHeaderValues } from '../matrix/x-matrix.js';
import { tenantOf } from './request-tenant.js';
import { StaticTokens } from './static-tokens.js';

export interface Requester {
  userId: string;
  deviceId?: string;
  isGuest: boolean;
}

/** Who is calling, and through which hosted homeserver. */
export interface AuthenticatedCaller extends Requester {
  tenant: HomeserverConfig;
}

const CACHE_LIMIT = 50_000;
// Printable ASCII without spaces: anything else cannot be a token and must not reach a header.
const TOKEN_SYNTAX = /^[\x21-\x7e]+$/;

const missingToken = () => new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token');
const unknownToken = (extra: Record<string, unknown> = {}) =>
  new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Unrecognised access token', extra);

export class AccessTokenVerifier {
  private readonly cache = new LruCache<string, { requester: Requester; expiresAt: number }>(CACHE_LIMIT);
  private readonly inFlight = new Map<string, Promise<Requester>>();

  constructor(
    private readonly settings: Config['auth'],
    private readonly log: Logger,
    private readonly staticTokens = new StaticTokens(),
    private readonly lookups?: CacheLookups,
  ) {}

  /** The token's owner per `tenant`'s homeserver; `asUserId` is an application service's ?user_id=. */
  async verify(tenant: HomeserverConfig, token: string, asUserId?: string): Promise<Requester> {
    if (!TOKEN_SYNTAX.test(token)) throw unknownToken();
    const staticUser = this.staticTokens.userOf(tenant.name, token);
    if (staticUser !== undefined) return { userId: staticUser, isGuest: false };
    if (tenant.clientApi === undefined) throw unknownToken();
    // Keyed by a digest so that tokens themselves are never kept as map keys.
    const key = hash('sha256', `${tenant.name}\n${asUserId ?? ''}\n${token}`, 'hex');
    const cached = this.cache.get(key);
    const fresh = cached !== undefined && cached.expiresAt > Date.now();
    this.lookups?.(fresh);
    if (fresh) return cached.requester;
    if (cached) this.cache.delete(key);
    const running = this.inFlight.get(key);
    if (running) return running;
    const lookup = this.whoami({ ...tenant, clientApi: tenant.clientApi }, token, asUserId)
      .then((requester) => {
        this.remember(key, requester);
        return requester;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, lookup);
    return lookup;
  }

  private remember(key: string, requester: Requester): void {
    if (this.settings.tokenCacheTtlMs <= 0) return;
    this.cache.set(key, { requester, expiresAt: Date.now() + this.settings.tokenCacheTtlMs });
  }

  private async whoami(tenant: HomeserverConfig & { clientApi: string }, token: string, asUserId: string | undefined): Promise<Requester> {
    let response: GotResponse<string>;
    try {
      response = await got.get(`${tenant.clientApi}/_matrix/client/v3/account/whoami`, {
        headers: { authorization: `Bearer ${token}` },
        searchParams: asUserId === undefined ? undefined : { user_id: asUserId },
        timeout: { request: this.settings.whoamiTimeoutMs },
        retry: { limit: 0 },
        throwHttpErrors: false,
        followRedirect: false,
        responseType: 'text',
      });
    } catch (error) {
      // Only the error's name and code are logged: got errors carry the request options, token included.
      const { name, code } = error as { name?: string; code?: string };
      this.log.warn({ homeserver: tenant.name, error: name, code }, 'access token check failed: homeserver unreachable');
      if (name === 'TimeoutError') {
        throw new MatrixError(504, 'M_UNKNOWN', 'The homeserver did not answer the access token check in time');
      }
      throw new MatrixError(502, 'M_UNKNOWN', 'The homeserver could not be reached to check the access token');
    }
    return this.interpret(tenant, response);
  }

  private interpret(tenant: HomeserverConfig, response: GotResponse<string>): Requester {
    const body = parseJsonObject(response.body);
    const status = response.statusCode;
    if (status === 200 && typeof body?.user_id === 'string') {
      return {
        userId: body.user_id,
        deviceId: typeof body.device_id === 'string' ? body.device_id : undefined,
        isGuest: body.is_guest === true,
      };
    }
    if (status === 401) throw unknownToken(body?.soft_logout === true ? { soft_logout: true } : {});
    if (status === 403) throw forbidden('The homeserver refused this access token');
    if (status === 429) {
      const retryAfterMs = typeof body?.retry_after_ms === 'number' ? body.retry_after_ms : 1000;
      throw new MatrixError(429, 'M_LIMIT_EXCEEDED', 'The homeserver is rate limiting access token checks', { retry_after_ms: retryAfterMs });
    }
    this.log.warn({ homeserver: tenant.name, status }, 'access token check failed: unexpected homeserver answer');
    throw new MatrixError(502, 'M_UNKNOWN', `The homeserver answered the access token check with HTTP ${status}`);
  }
}

/**
 * The token from `Authorization: Bearer`, else from `?access_token=` when allowed (the client API's
 * `auth.allowQueryStringToken`: deprecated in spec v1.11, removed in v1.20).
 */
export function accessTokenOf(req: Request, allowQueryString: boolean): string | undefined {
  const headers = authorizationHeaderValues(req.rawHeaders);
  // Node would keep the first of two: which one a proxy added is unknowable, so neither is used (as Synapse).
  if (headers.length > 1) throw new MatrixError(401, 'M_MISSING_TOKEN', 'Too many Authorization headers');
  const header = headers[0];
  if (header !== undefined) {
    const match = /^Bearer +(\S+) *$/i.exec(header);
    return match ? match[1] : undefined;
  }
  if (!allowQueryString) return undefined;
  const query = req.query.access_token;
  return typeof query === 'string' && query !== '' ? query : undefined;
}

/** Client requests: which hosted homeserver a caller belongs to, and who the caller is. */
export class ClientAuthenticator {
  private readonly tokens: AccessTokenVerifier;

  constructor(private readonly settings: Config['auth'], log: Logger, staticTokens?: StaticTokens, tokenLookups?: CacheLookups) {
    this.tokens = new AccessTokenVerifier(settings, log, staticTokens, tokenLookups);
  }

  /**
   * Checks the request's access token with the homeserver the request addresses (./request-tenant), whatever
   * server name a media path holds; guests only where `allowGuests`.
   */
  async authenticate(req: Request, options: { allowGuests: boolean }): Promise<AuthenticatedCaller> {
    const tenant = tenantOf(req);
    const token = accessTokenOf(req, this.settings.allowQueryStringToken);
    if (token === undefined) throw missingToken();
    const asUserId = typeof req.query.user_id === 'string' ? req.query.user_id : undefined;
    const requester = await this.tokens.verify(tenant, token, asUserId);
    if (requester.isGuest && !options.allowGuests) throw forbidden('Guest users cannot use this endpoint');
    return { ...requester, tenant };
  }
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
