// Outbound-federation test bed: remote homeservers checking our signatures with Synapse's signedjson, a CDN, our signed client.
import type { FederationClient } from '../../src/federation/client.js';
import type { RemoteMediaRequest } from '../../src/federation/media.js';
import { createTestFederationClient } from './federation-client.js';
import { generateSynapseKey, type SynapseKey } from './keys.js';
import { startRemoteHomeserver, type RemoteHomeserver } from './remote-homeserver.js';

export const TENANT = 'tenant.test';
export const REMOTE = 'remote.test';
export const CDN = 'cdn.test';

export let key: SynapseKey;
export let remote: RemoteHomeserver;
export let legacyRemote: RemoteHomeserver;
export let cdn: RemoteHomeserver;
export let client: FederationClient;
export let clientLines: string[];

/** A media request from TENANT to REMOTE with roomy limits; `extra` overrides. */
export function request(mediaId: string, extra: Partial<RemoteMediaRequest> = {}): RemoteMediaRequest {
  return { origin: TENANT, serverName: REMOTE, mediaId, timeoutMs: 5000, headersTimeoutMs: 3000, maxBytes: 1024 * 1024, idleMs: 1000, ...extra };
}

/**
 * Starts the remote homeserver (remote.test), one that knows only X-Matrix (legacy.test), a CDN and the client before
 * the calling file's tests, and stops them after. The exported `let` bindings are live (ESM), so test files read them as if they were their own variables.
 */
export function useOutboundPeers(): void {
  beforeAll(async () => {
    key = await generateSynapseKey('k1');
    const trustedKeys = { [TENANT]: { [key.keyId]: key.publicKey } };
    remote = await startRemoteHomeserver({ serverName: REMOTE, trustedKeys });
    legacyRemote = await startRemoteHomeserver({ serverName: 'legacy.test', trustedKeys, acceptScoped: false });
    cdn = await startRemoteHomeserver({ serverName: CDN, trustedKeys: {} });
    clientLines = [];
    ({ client } = createTestFederationClient({
      keys: { [TENANT]: key },
      overrides: { [REMOTE]: remote.url, 'legacy.test': legacyRemote.url, [CDN]: cdn.url },
      allowlist: ['127.0.0.1/32'],
      logLines: clientLines,
    }));
  });

  afterAll(async () => {
    client.close();
    await Promise.all([remote.close(), legacyRemote.close(), cdn.close()]);
  });
}
