// A remote homeserver for the federation benchmarks: its key server on loopback (the service is pointed at
// it with federation.serverOverrides) and X-Matrix Authorization headers signed with its key, to replay.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { encodeBase64 } from '../src/matrix/base64.js';
import { createSigner, generateSeed, type Signer } from '../src/matrix/ed25519.js';
import { signJson } from '../src/matrix/signed-json.js';
import { buildAuthorizationHeader } from '../src/matrix/x-matrix.js';

export const PEER_KEY_ID = 'ed25519:bench';

export interface FederationPeer {
  origin: string;
  signer: Signer;
  keyServerUrl: string;
  /** The Authorization header of a GET of `uri` sent to `destination`: it covers no time, so it can be replayed. */
  authorization(uri: string, destination: string): string;
  close(): void;
}

export async function startFederationPeer(origin = 'peer.bench'): Promise<FederationPeer> {
  const signer = createSigner(generateSeed());
  const keyServer: Server = createServer((_req, res) => {
    const keys = signJson({
      server_name: origin,
      valid_until_ts: Date.now() + 24 * 3600_000,
      verify_keys: { [PEER_KEY_ID]: { key: encodeBase64(signer.publicKey) } },
      old_verify_keys: {},
    }, origin, PEER_KEY_ID, signer);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(keys));
  });
  keyServer.listen(0, '127.0.0.1');
  await once(keyServer, 'listening');
  return {
    origin,
    signer,
    keyServerUrl: `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}`,
    authorization: (uri, destination) => buildAuthorizationHeader({ method: 'GET', uri, origin, destination }, PEER_KEY_ID, signer),
    close: () => keyServer.close(),
  };
}

/** The service's config line that sends key requests for the peer to its loopback key server. */
export function peerOverrideConfig(peer: FederationPeer): string {
  return `federation: ${JSON.stringify({ serverOverrides: { [peer.origin]: peer.keyServerUrl } })}`;
}
