// Builds the outbound federation stack from the config: DNS, IP filter, HTTP with deadlines, discovery,
// and the signing client on top.
import { readFileSync } from 'node:fs';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import { FederationClient, type AuthSchemeSource, type SigningKeySource } from './client.js';
import { ServerResolver } from './discovery.js';
import { Dns } from './dns.js';
import { OutboundHttp } from './http.js';
import { IpFilter } from './ip-filter.js';

export function createFederationClient(config: Config, signingKeys: SigningKeySource, log: Logger, schemes?: AuthSchemeSource): FederationClient {
  const settings = config.federation;
  const dns = new Dns({ servers: settings.dnsServers });
  const filter = new IpFilter({ blocklist: settings.ipBlocklist, allowlist: settings.ipAllowlist });
  const extraCa = settings.caFile === undefined ? undefined : readCaFile(settings.caFile);
  const http = new OutboundHttp({ dns, filter, extraCa, userAgent: 'matrix-media-repo-ts' });
  const timeouts = { connectMs: settings.connectTimeoutMs, headersMs: settings.requestTimeoutMs };
  const resolver = new ServerResolver({ dns, http, timeouts, overrides: settings.serverOverrides });
  return new FederationClient({
    resolver,
    http,
    signingKeys,
    schemes,
    log,
    connectTimeoutMs: settings.connectTimeoutMs,
    requestTimeoutMs: settings.requestTimeoutMs,
  });
}

function readCaFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`federation.caFile: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
