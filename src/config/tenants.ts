// The hosted homeservers by name and by the Host values their clients and peers use (the rule that picks
// a request's homeserver is http/request-tenant).
import type { HomeserverConfig } from '../config/config.js';

export class Tenants {
  private readonly byHost = new Map<string, HomeserverConfig>();

  constructor(readonly homeservers: HomeserverConfig[]) {
    for (const hs of homeservers) for (const host of [hs.name, ...hs.hostnames]) this.byHost.set(host, hs);
  }

  /** The homeserver named exactly `serverName` (server names are case-sensitive). */
  byName(serverName: string): HomeserverConfig | undefined {
    const hs = this.byHost.get(serverName);
    return hs?.name === serverName ? hs : undefined;
  }

  /** The homeserver a Host header addresses: its name or one of its extra hostnames, with or without port. */
  byHostHeader(host: string | undefined): HomeserverConfig | undefined {
    if (!host) return undefined;
    const lower = host.toLowerCase();
    return this.byHost.get(host) ?? this.byHost.get(lower) ?? this.byHost.get(stripPort(lower));
  }
}

function stripPort(host: string): string {
  return host.replace(/:\d+$/, '');
}
