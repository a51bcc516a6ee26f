// Server discovery (server-server API "Resolving server names",
// https://spec.matrix.org/v1.16/server-server-api/#resolving-server-names), in the spec's order. Each
// step gives the endpoints to connect to, the Host header and the name the TLS certificate must match:
// the server name or the delegated name, never an SRV target (DNS is not trusted).
import { isIP } from 'node:net';
import { formatServerName, parseServerName, type ParsedServerName } from '../matrix/server-name.js';
import type { Dns } from './dns.js';
import { targetForUrl, UpstreamError, type Endpoint, type OutboundHttp, type Target, type Timeouts } from './http.js';
import { isServiceRefused, orderSrvRecords } from './srv.js';
import { WellKnownCache } from './well-known.js';

export const DEFAULT_FEDERATION_PORT = 8448;

export type DiscoveryStep =
  | 'override'
  | 'ip-literal'
  | 'explicit-port'
  | 'delegated-ip-literal'
  | 'delegated-explicit-port'
  | 'delegated-srv-matrix-fed'
  | 'delegated-srv-matrix'
  | 'delegated-default-port'
  | 'srv-matrix-fed'
  | 'srv-matrix'
  | 'default-port';

export interface ResolvedServer extends Target {
  readonly serverName: string;
  /** Which step of the algorithm decided, for logs and tests. */
  readonly step: DiscoveryStep;
}

export interface ServerResolverOptions {
  dns: Dns;
  http: OutboundHttp;
  timeouts: Timeouts;
  /** federation.serverOverrides: server name -> base URL (its origin is used), skipping discovery. */
  overrides?: Readonly<Record<string, string>>;
  now?: () => number;
  random?: () => number;
  /** Only tests change these: they cannot listen on 443 and 8448. */
  wellKnownPort?: number;
  defaultPort?: number;
}

export class ServerResolver {
  private readonly wellKnown: WellKnownCache;
  private readonly defaultPort: number;

  constructor(private readonly options: ServerResolverOptions) {
    this.wellKnown = new WellKnownCache({ http: options.http, timeouts: options.timeouts, port: options.wellKnownPort, now: options.now });
    this.defaultPort = options.defaultPort ?? DEFAULT_FEDERATION_PORT;
  }

  async resolveServerName(serverName: string): Promise<ResolvedServer> {
    const override = this.options.overrides?.[serverName];
    if (override !== undefined) return { ...targetForUrl(new URL(override)), trusted: true, serverName, step: 'override' };

    const name = parseServerName(serverName);
    if (name === null) throw new UpstreamError('unreachable', `"${serverName}" is not a valid server name`);
    // 1. IP literal: the certificate is for the IP, Host is the server name as given.
    if (name.kind !== 'dns') return direct(serverName, name, name.port ?? this.defaultPort, serverName, 'ip-literal');
    // 2. Host name with a port.
    if (name.port !== undefined) return direct(serverName, name, name.port, serverName, 'explicit-port');

    // 3. /.well-known/matrix/server delegation.
    const wellKnown = await this.wellKnown.lookup(name.hostname);
    if ('delegated' in wellKnown) {
      const delegated = parseServerName(wellKnown.delegated)!;
      const host = formatServerName(delegated);
      if (delegated.kind !== 'dns') return direct(serverName, delegated, delegated.port ?? this.defaultPort, host, 'delegated-ip-literal');
      if (delegated.port !== undefined) return direct(serverName, delegated, delegated.port, host, 'delegated-explicit-port');
      return (
        (await this.viaSrv(serverName, delegated.hostname, 'delegated-srv-matrix-fed', 'delegated-srv-matrix')) ??
        direct(serverName, delegated, this.defaultPort, delegated.hostname, 'delegated-default-port')
      );
    }
    // 4–6. No delegation: SRV on the server's own host name, then port 8448.
    return (await this.viaSrv(serverName, name.hostname, 'srv-matrix-fed', 'srv-matrix')) ?? direct(serverName, name, this.defaultPort, name.hostname, 'default-port');
  }

  /** _matrix-fed._tcp, then the deprecated _matrix._tcp; Host and certificate stay `hostname`. */
  private async viaSrv(serverName: string, hostname: string, fedStep: DiscoveryStep, legacyStep: DiscoveryStep): Promise<ResolvedServer | undefined> {
    for (const [service, step] of [['_matrix-fed._tcp', fedStep], ['_matrix._tcp', legacyStep]] as const) {
      const records = await this.options.dns.resolveSrv(`${service}.${hostname}`).catch(() => []);
      if (records.length === 0) continue;
      if (isServiceRefused(records)) throw new UpstreamError('unreachable', `${service}.${hostname} says the service is not available`);
      const endpoints: Endpoint[] = orderSrvRecords(records, this.options.random).map((r) => ({ host: r.name.replace(/\.$/, ''), port: r.port }));
      return { protocol: 'https:', endpoints, hostHeader: hostname, tlsServername: hostname, serverName, step };
    }
    return undefined;
  }
}

function direct(serverName: string, name: ParsedServerName, port: number, hostHeader: string, step: DiscoveryStep): ResolvedServer {
  return {
    protocol: 'https:',
    endpoints: [{ host: name.hostname, port }],
    hostHeader,
    // No SNI and an IP certificate for IP literals (server-server API "TLS").
    tlsServername: isIP(name.hostname) ? undefined : name.hostname,
    serverName,
    step,
  };
}
