// DNS for outbound federation: SRV records, A/AAAA addresses, and the `lookup` every outbound socket uses,
// which drops blocked addresses before the socket connects (no second resolution between check and use).
import { promises as dnsPromises, type LookupAddress, type SrvRecord } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { BlockedAddressError, type IpFilter } from './ip-filter.js';

export type { SrvRecord };

export interface DnsOptions {
  /** Name servers ("ip" or "ip:port"); unset: the system's resolver and getaddrinfo (/etc/hosts included). */
  servers?: readonly string[];
  /** Per query attempt. */
  timeoutMs?: number;
}

const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND', 'NXDOMAIN', 'ENONAME']);

export class Dns {
  private readonly resolver: dnsPromises.Resolver;
  private readonly ownServers: boolean;

  constructor(options: DnsOptions = {}) {
    this.resolver = new dnsPromises.Resolver({ timeout: options.timeoutMs ?? 5000, tries: 2 });
    this.ownServers = options.servers !== undefined && options.servers.length > 0;
    if (this.ownServers) this.resolver.setServers([...options.servers!]);
  }

  /** SRV records of `name`; none when the name or the record does not exist, or DNS fails (discovery then moves on). */
  async resolveSrv(name: string): Promise<SrvRecord[]> {
    try {
      return await this.resolver.resolveSrv(name);
    } catch (error) {
      if (NO_RECORDS.has((error as NodeJS.ErrnoException).code ?? '')) return [];
      throw error;
    }
  }

  /** The IPv6 and IPv4 addresses of a host name (CNAMEs followed by the resolver). */
  async resolveAddresses(host: string): Promise<LookupAddress[]> {
    if (isIP(host)) return [{ address: host, family: isIP(host) }];
    if (!this.ownServers) return dnsPromises.lookup(host, { all: true, verbatim: true });
    const [v6, v4] = await Promise.allSettled([this.resolver.resolve6(host), this.resolver.resolve4(host)]);
    const addresses: LookupAddress[] = [
      ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 })) : []),
      ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 })) : []),
    ];
    if (addresses.length > 0) return addresses;
    const failure = [v4, v6].find((r): r is PromiseRejectedResult => r.status === 'rejected' && !NO_RECORDS.has(r.reason?.code));
    if (failure) throw failure.reason;
    throw Object.assign(new Error(`no addresses found for ${host}`), { code: 'ENOTFOUND', hostname: host });
  }

  /**
   * A `lookup` for net/tls/http: resolves through this Dns and keeps only addresses `filter` allows.
   * When all are blocked the socket fails with BlockedAddressError before any connection attempt.
   */
  filteredLookup(filter: IpFilter | null): LookupFunction {
    return (hostname, options, callback) => {
      this.resolveAddresses(hostname).then(
        (all) => {
          const family = typeof options.family === 'number' ? options.family : 0;
          // Only addresses of the family asked for can be blocked: none at all is "not found", not "blocked".
          const usable = all.filter((a) => family === 0 || a.family === family);
          const allowed = usable.filter((a) => !(filter?.isBlocked(a.address) ?? false));
          if (allowed.length === 0) {
            const error = usable.length > 0 ? new BlockedAddressError(hostname, usable.map((a) => a.address)) : Object.assign(new Error(`no usable address for ${hostname}`), { code: 'ENOTFOUND' });
            callback(error as NodeJS.ErrnoException, options.all ? [] : '', 0);
            return;
          }
          if (options.all) callback(null, allowed);
          else callback(null, allowed[0]!.address, allowed[0]!.family);
        },
        (error: NodeJS.ErrnoException) => callback(error, options.all ? [] : '', 0),
      );
    };
  }
}
