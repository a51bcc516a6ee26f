// What every flow needs, built once at start and handed down.
import type { Config } from './config/config.js';
import type { Database } from './db/database.js';
import type { FederationClient } from './federation/client.js';
import type { Tenants } from './http/tenant.js';
import type { Keyring } from './keys/keyring.js';
import type { SigningKeyStore } from './keys/signing-key-store.js';
import type { Logger } from './log.js';
import type { MediaStore } from './media/media-store.js';
import type { RemoteMedia } from './media/remote.js';
import type { Datastore } from './storage/datastore.js';

export interface AppContext {
  config: Config;
  log: Logger;
  db: Database;
  tenants: Tenants;
  signingKeys: SigningKeyStore;
  /** Media bytes, content-addressed by sha256. */
  storage: Datastore;
  /** Media and thumbnail metadata, tied to `storage`. */
  media: MediaStore;
  /** Remote servers' public keys, for verifying inbound federation requests. */
  keyring: Keyring;
  /** Outbound federation: discovery, IP filter, signed requests. */
  federation: FederationClient;
  /** Remote media fetched for the hosted homeservers' users, cached in `storage`. */
  remoteMedia: RemoteMedia;
}
