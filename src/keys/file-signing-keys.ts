// Signing keys read straight from the homeservers' key files, without the database: for checks that must not
// open the service's database (doctor next to a running service on the embedded one).
import type { HomeserverConfig } from '../config/config.js';
import { encodeBase64 } from '../matrix/base64.js';
import { createSigner } from '../matrix/ed25519.js';
import { REQUESTS_SCOPE } from '../matrix/x-matrix.js';
import { keyId, readKeyFile } from './key-files.js';
import type { ActiveSigningKey } from './signing-key-store.js';

export class FileSigningKeys {
  private readonly keys = new Map<string, Promise<ActiveSigningKey | undefined>>();

  constructor(private readonly homeservers: readonly HomeserverConfig[]) {}

  /** The first key of the homeserver's signingKeyPath (the one serve makes active); undefined without one. */
  activeKey(serverName: string): Promise<ActiveSigningKey | undefined> {
    let key = this.keys.get(serverName);
    if (!key) {
      key = this.load(serverName);
      this.keys.set(serverName, key);
    }
    return key;
  }

  private async load(serverName: string): Promise<ActiveSigningKey | undefined> {
    const file = this.homeservers.find((hs) => hs.name === serverName)?.signingKeyPath;
    if (file === undefined) return undefined;
    const first = (await readKeyFile(file)).keys[0]!;
    const signer = createSigner(first.seed);
    return { serverName, keyId: keyId(first), publicKey: encodeBase64(signer.publicKey), scope: [REQUESTS_SCOPE], signer };
  }
}
