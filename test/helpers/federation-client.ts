// Our side of outbound federation: the stack built the way src/federation/outbound.ts builds it, with
// test knobs (keys without a key store, overrides, filters, DNS servers, a test CA, timeouts, clock).
import { FederationClient, type AuthSchemeSource } from '../../src/federation/client.js';
import { ServerResolver } from '../../src/federation/discovery.js';
import { Dns } from '../../src/federation/dns.js';
import { OutboundHttp } from '../../src/federation/http.js';
import { IpFilter } from '../../src/federation/ip-filter.js';
import { parseKeyFile } from '../../src/keys/key-files.js';
import { REQUESTS_SCOPE } from '../../src/matrix/x-matrix.js';
import { createLogger } from '../../src/log.js';
import { createSigner } from '../../src/matrix/ed25519.js';
import type { SynapseKey } from './keys.js';

export interface TestClientOptions {
  /** Origin server name -> its Synapse key (a stand-in for the SigningKeyStore, which has its own tests). */
  keys?: Record<string, SynapseKey & { scope?: string[] }>;
  overrides?: Record<string, string>;
  allowlist?: string[];
  blocklist?: string[];
  dnsServers?: string[];
  extraCa?: string;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  wellKnownPort?: number;
  defaultPort?: number;
  now?: () => number;
  random?: () => number;
  logLines?: string[];
  schemes?: AuthSchemeSource;
}

export function createTestFederationClient(options: TestClientOptions = {}): { client: FederationClient; resolver: ServerResolver; http: OutboundHttp } {
  const dns = new Dns({ servers: options.dnsServers, timeoutMs: 1000 });
  const filter = new IpFilter({ allowlist: options.allowlist, blocklist: options.blocklist });
  const http = new OutboundHttp({ dns, filter, extraCa: options.extraCa });
  const timeouts = { connectMs: options.connectTimeoutMs ?? 2000, headersMs: options.requestTimeoutMs ?? 3000 };
  const resolver = new ServerResolver({
    dns, http, timeouts, overrides: options.overrides, wellKnownPort: options.wellKnownPort, defaultPort: options.defaultPort,
    now: options.now, random: options.random,
  });
  const signers = new Map(Object.entries(options.keys ?? {}).map(([serverName, key]) => {
    const seed = parseKeyFile(key.file, 'test.key').keys[0]!.seed;
    return [serverName, { serverName, keyId: key.keyId, publicKey: key.publicKey, scope: key.scope ?? [REQUESTS_SCOPE], signer: createSigner(seed) }];
  }));
  const lines = options.logLines;
  const log = createLogger(lines ? 'info' : 'silent', lines ? { write: (line: string) => lines.push(line) } : undefined);
  const client = new FederationClient({
    resolver, http, log,
    signingKeys: { activeKey: async (name) => signers.get(name) },
    schemes: options.schemes,
    connectTimeoutMs: timeouts.connectMs,
    requestTimeoutMs: timeouts.headersMs,
    now: options.now,
  });
  return { client, resolver, http };
}
