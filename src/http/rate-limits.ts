// Rate limits per homeserver and endpoint family: requests per client IP, per user and per remote server
// (token buckets), media bytes per client IP (responses slowed), remote fetches per destination.
// Every bucket key starts with the homeserver, so one homeserver's traffic never spends another's tokens.
import { Transform, type TransformCallback } from 'node:stream';
import type { HomeserverConfig, RateLimitsConfig } from '../config/config.js';
import { IpFilter } from '../federation/ip-filter.js';
import { MatrixError } from '../matrix/errors.js';
import { globMatcher } from '../matrix/glob.js';
import type { RouteFamily } from './route-family.js';
import { TokenBuckets, type BucketSpec, type Clock } from './token-buckets.js';

export type LimitedFamily = keyof RateLimitsConfig['families'];
export type LimitScope = 'ip' | 'user' | 'server' | 'remote_fetch';
/** Told about every refusal (for metrics). */
export type RateLimitRefusals = (homeserver: string, family: string, scope: LimitScope) => void;

interface Policy {
  config: RateLimitsConfig;
  exemptIp: IpFilter;
  exemptUser: Array<(userId: string) => boolean>;
}

const NO_TENANT = '-';

export class RateLimits {
  private readonly buckets: TokenBuckets;
  private readonly policies = new Map<string, Policy>();
  private readonly fallback: Policy;

  constructor(homeservers: readonly HomeserverConfig[], fallback: RateLimitsConfig, private readonly onRefusal: RateLimitRefusals = () => {}, clock: Clock = Date.now) {
    this.buckets = new TokenBuckets(clock);
    this.fallback = policy(fallback);
    // Homeservers without a block of their own share the top-level one: one policy per distinct block.
    const built = new Map<RateLimitsConfig, Policy>([[fallback, this.fallback]]);
    for (const hs of homeservers) {
      let p = built.get(hs.rateLimits);
      if (!p) built.set(hs.rateLimits, (p = policy(hs.rateLimits)));
      this.policies.set(hs.name, p);
    }
  }

  /** Requests per client IP, before authentication; `tenant` as the Host header names it. */
  checkIp(tenant: HomeserverConfig | undefined, family: RouteFamily, ip: string): void {
    const p = this.policyOf(tenant?.name);
    if (!isLimited(family) || !p.config.enabled || p.exemptIp.isBlocked(ip)) return;
    this.take(tenant?.name ?? NO_TENANT, family, 'ip', ip, p.config.families[family].perIp);
  }

  /** Requests per user, once the access token says who it is. */
  checkUser(tenant: HomeserverConfig, family: RouteFamily, userId: string, ip: string): void {
    const p = this.policyOf(tenant.name);
    if (!isLimited(family) || !p.config.enabled || p.exemptIp.isBlocked(ip) || p.exemptUser.some((m) => m(userId))) return;
    this.take(tenant.name, family, 'user', userId, p.config.families[family].perUser);
  }

  /** Federation requests per authenticated remote server. */
  checkServer(tenant: HomeserverConfig, origin: string, ip: string): void {
    const p = this.policyOf(tenant.name);
    if (!p.config.enabled || p.exemptIp.isBlocked(ip)) return;
    this.take(tenant.name, 'federation', 'server', origin, p.config.families.federation.perServer);
  }

  /** Remote media fetches a hosted homeserver starts towards one origin. */
  checkRemoteFetch(tenant: string, destination: string): void {
    const p = this.policyOf(tenant);
    if (!p.config.enabled) return;
    this.take(tenant, 'remote_fetch', 'remote_fetch', destination, p.config.remoteFetches);
  }

  /** A stream slowing media to the IP's bandwidth share; undefined when unlimited. */
  bandwidth(tenant: HomeserverConfig | undefined, ip: string): Transform | undefined {
    const p = this.policyOf(tenant?.name);
    const { bytesPerSecond, burstBytes } = p.config.downloadBandwidth;
    if (!p.config.enabled || bytesPerSecond <= 0 || p.exemptIp.isBlocked(ip)) return undefined;
    const spec = { perSecond: bytesPerSecond, burstCount: burstBytes };
    const key = `${tenant?.name ?? NO_TENANT}|bandwidth|${ip}`;
    return new Throttle((bytes) => this.buckets.borrow(key, spec, bytes));
  }

  private take(tenant: string, family: string, scope: LimitScope, who: string, spec: BucketSpec): void {
    const waitMs = this.buckets.take(`${tenant}|${family}|${scope}|${who}`, spec);
    if (waitMs === 0) return;
    this.onRefusal(tenant, family, scope);
    throw new MatrixError(429, 'M_LIMIT_EXCEEDED', `Too many requests (${family} per ${scope === 'remote_fetch' ? 'destination' : scope}): retry later`, {
      retry_after_ms: waitMs,
    });
  }

  private policyOf(tenant: string | undefined): Policy {
    return (tenant === undefined ? undefined : this.policies.get(tenant)) ?? this.fallback;
  }
}

function policy(config: RateLimitsConfig): Policy {
  return { config, exemptIp: new IpFilter({ defaults: config.exemptIps }), exemptUser: config.exemptUsers.map(globMatcher) };
}

function isLimited(family: RouteFamily): family is LimitedFamily {
  return family !== 'health' && family !== 'other';
}

/** Passes chunks on after the bucket's wait: a client past its share gets its bytes later, not an error. */
class Throttle extends Transform {
  constructor(private readonly borrow: (bytes: number) => number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const waitMs = this.borrow(chunk.length);
    if (waitMs === 0) done(null, chunk);
    else setTimeout(() => done(null, chunk), waitMs);
  }
}
