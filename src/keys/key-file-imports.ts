// Start-up's signing keys: every homeserver's key file read once, before the database is opened (so a bad
// file fails at once), then imported in one pass with one log line for the lot.
import type { HomeserverConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { readKeyFileSync, type SigningKey } from './key-files.js';
import type { KeyFileImport, SigningKeyStore } from './signing-key-store.js';

/** The first key of each homeserver's signingKeyPath; homeservers without one are left out. */
export function readKeyFiles(homeservers: readonly HomeserverConfig[]): KeyFileImport[] {
  const firstKey = (name: string, file: string): SigningKey => {
    try {
      return readKeyFileSync(file).keys[0]!;
    } catch (error) {
      return failKeyFile(name, error as Error);
    }
  };
  return homeservers.flatMap(({ name, signingKeyPath: file }) => (file === undefined ? [] : [{ serverName: name, file, key: firstKey(name, file) }]));
}

/** Logs each homeserver whose key was imported or rotated, and one summary: 10,000 "unchanged" lines help nobody. */
export async function importKeyFiles(store: SigningKeyStore, homeservers: readonly HomeserverConfig[], imports: readonly KeyFileImport[], log: Logger): Promise<void> {
  const without = homeservers.filter((hs) => hs.signingKeyPath === undefined).map((hs) => hs.name);
  if (without.length > 0) {
    log.warn({ homeservers: without }, 'no signingKeyPath: remote media can only be fetched over the legacy unauthenticated endpoints');
  }
  const outcomes = await store.importKeys(imports).catch((error: Error) => {
    throw new Error(`signing keys: ${error.message}`);
  });
  const counts: Record<string, number> = { unchanged: 0, imported: 0, rotated: 0 };
  for (const item of imports) {
    const outcome = outcomes.get(item.serverName)!;
    counts[outcome]! += 1;
    if (outcome !== 'unchanged') log.info({ homeserver: item.serverName, keyId: `ed25519:${item.key.version}`, outcome }, 'signing key ready');
  }
  // The seeds now live only encrypted in the database.
  for (const item of imports) item.key.seed.fill(0);
  log.info(counts, 'signing keys ready');
}

export function failKeyFile(homeserver: string, error: Error): never {
  throw new Error(`homeserver ${homeserver}: signing key ${error.message}`);
}
