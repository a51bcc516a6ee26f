// The hosted homeservers by name and by the Host values their clients and peers use (the rule that picks
// a request's homeserver is http/request-tenant).
import type { HomeserverConfig } from '../config/config.js';

export class Tenants {
  // Two maps, so that each lookup is one probe however many homeservers are hosted.
  private readonly byHost = new Map<string, HomeserverConfig>();
  private readonly names = new Map<string, HomeserverConfig>();

  constructor(readonly homeservers: HomeserverConfig[]) {
    for (const hs of homeservers) {
      this.names.set(hs.name, hs);
      this.byHost.set(hs.name, hs);
      for (const host of hs.hostnames) this.byHost.set(host, hs);
    }
  }

  /** The homeserver named exactly `serverName` (server names are case-sensitive). */
  byName(serverName: string): HomeserverConfig | undefined {
    return this.names.get(serverName);
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
