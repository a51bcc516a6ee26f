// Start-up's signing keys: every homeserver's key file read once, before the database is opened (so a bad
// file fails at once), then imported in one pass with one log line for the lot.
import type { HomeserverConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { readKeyFile } from './key-files.js';
import type { KeyFileImport, SigningKeyStore } from './signing-key-store.js';

// Files read at once: enough to hide each read's latency, few enough not to exhaust descriptors.
const PARALLEL_READS = 32;

/** The first key of each homeserver's signingKeyPath; homeservers without one are left out. */
export async function readKeyFiles(homeservers: readonly HomeserverConfig[]): Promise<KeyFileImport[]> {
  const withFile = homeservers.filter((hs): hs is HomeserverConfig & { signingKeyPath: string } => hs.signingKeyPath !== undefined);
  const imports = new Array<KeyFileImport>(withFile.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < withFile.length; i = next++) {
      const { name, signingKeyPath } = withFile[i]!;
      const { keys } = await readKeyFile(signingKeyPath).catch((error: Error) => failKeyFile(name, error));
      imports[i] = { serverName: name, file: signingKeyPath, key: keys[0]! };
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_READS, withFile.length) }, worker));
  return imports;
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
