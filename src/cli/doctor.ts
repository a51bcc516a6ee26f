// media-repo doctor: checks, for each hosted homeserver, what a provider gets wrong when setting it up, and
// prints one row per check (or JSON with -json). It opens no embedded database, so it runs beside `serve`.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSecret, type Config } from '../config/config.js';
import { openDatabase, type Database } from '../db/database.js';
import { checkHomeserver, type CheckResult } from '../federation/homeserver-checks.js';
import { createFederationClient } from '../federation/outbound.js';
import { FileSigningKeys } from '../keys/file-signing-keys.js';
import { MasterKey } from '../keys/master-key.js';
import { SigningKeyStore } from '../keys/signing-key-store.js';
import { createLogger } from '../log.js';
import type { CliIo } from './args.js';

const SERVICE_ROW = '(this service)';
const CHECK_TIMEOUT_MS = 10_000;

/** Prints the checks; true when none failed. */
export async function doctor(config: Config, io: CliIo, options: { json: boolean }): Promise<boolean> {
  const results = await localChecks(config);
  const signingKeys = new FileSigningKeys(config.homeservers);
  const federation = createFederationClient(config, signingKeys, createLogger('silent'));
  try {
    const timeoutMs = Math.min(CHECK_TIMEOUT_MS, config.federation.requestTimeoutMs);
    for (const hs of config.homeservers) results.push(...(await checkHomeserver(hs, { federation, signingKeys, timeoutMs })));
  } finally {
    federation.close();
  }
  if (config.homeservers.length === 0) results.push({ homeserver: SERVICE_ROW, check: 'homeservers', status: 'fail', detail: 'none configured: add homeservers to the config' });
  const ok = results.every((r) => r.status !== 'fail');
  io.stdout.write(options.json ? `${JSON.stringify({ ok, checks: results }, null, 2)}\n` : formatTable(results));
  return ok;
}

/** The master key and the database: readable, and the one decrypts the signing keys kept in the other. */
async function localChecks(config: Config): Promise<CheckResult[]> {
  const row = (check: string, status: CheckResult['status'], detail: string): CheckResult => ({ homeserver: SERVICE_ROW, check, status, detail });
  const results: CheckResult[] = [];
  let masterKey: MasterKey | undefined;
  const keyFile = join(config.dataDir, 'master.key');
  try {
    if (config.masterKey !== undefined) masterKey = MasterKey.load(config.masterKey);
    else if (existsSync(keyFile)) masterKey = MasterKey.load({ file: keyFile });
    results.push(masterKey ? row('master key', 'ok', 'readable') : row('master key', 'warn', `no masterKey and no ${keyFile} yet: serve creates it; back it up`));
  } catch (error) {
    results.push(row('master key', 'fail', `${(error as Error).message}: fix masterKey`));
  }
  if (config.database.url === undefined) {
    const dir = join(config.dataDir, 'pglite');
    const created = existsSync(join(dir, 'PG_VERSION'));
    results.push(row('database', created ? 'ok' : 'warn', created
      ? `embedded in ${dir} (not opened: only the service opens it; use PostgreSQL with more than one instance)`
      : `embedded database ${dir} not created yet: serve creates it`));
    return results;
  }
  let db: Database | undefined;
  try {
    db = await openDatabase({ url: readSecret(config.database.url, 'database.url'), dataDir: config.dataDir, poolMax: 1 });
    results.push(row('database', 'ok', 'reachable'));
    if (masterKey) results.push(...(await decryptableKeys(config, new SigningKeyStore(db.knex, masterKey), row)));
  } catch (error) {
    results.push(row('database', 'fail', (error as Error).message));
  } finally {
    await db?.close();
  }
  return results;
}

async function decryptableKeys(config: Config, store: SigningKeyStore, row: (check: string, status: CheckResult['status'], detail: string) => CheckResult): Promise<CheckResult[]> {
  const failures: string[] = [];
  for (const hs of config.homeservers) {
    try {
      await store.activeKey(hs.name);
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  if (failures.length === 0) return [row('stored signing keys', 'ok', 'every stored key decrypts under the master key')];
  return [row('stored signing keys', 'fail', `${failures.join('; ')}: configure the masterKey they were stored with`)];
}

function formatTable(results: CheckResult[]): string {
  const header = ['HOMESERVER', 'CHECK', 'STATUS', 'DETAIL'];
  const rows = results.map((r) => [r.homeserver, r.check, r.status.toUpperCase(), r.detail]);
  const widths = [0, 1, 2].map((i) => Math.max(header[i]!.length, ...rows.map((cells) => cells[i]!.length)));
  const line = (cells: string[]) => `${cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  ')}\n`;
  return [header, ...rows].map(line).join('');
}
