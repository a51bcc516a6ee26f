// Every request belongs to exactly one hosted homeserver: by the server name in its path, else by Host.
import type { HomeserverConfig } from '../config/config.js';
import { MatrixError } from '../matrix/errors.js';

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
    return this.byHost.get(host) ?? this.byHost.get(host.toLowerCase()) ?? this.byHost.get(stripPort(host));
  }

  requireByHost(host: string | undefined): HomeserverConfig {
    const hs = this.byHostHeader(host);
    if (!hs) throw new MatrixError(404, 'M_NOT_FOUND', `This media repository does not serve the homeserver "${host ?? ''}"`);
    return hs;
  }
}

function stripPort(host: string): string {
  return host.replace(/:\d+$/, '');
}
