// Keys and certificates made by independent tools: Synapse signing keys by Synapse's signedjson (in the
// shared Python worker), and a test CA with its certificates by openssl; the key-file test vectors and
// temporary key files.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildConfig, type HomeserverConfig } from '../../src/config/config.js';
import { withPythonWorker } from './python-worker.js';

export interface SynapseKey {
  /** e.g. ed25519:a1 */
  readonly keyId: string;
  readonly version: string;
  /** Unpadded Base64 seed as signedjson writes it. */
  readonly seed: string;
  /** Unpadded Base64 public key as signedjson writes it. */
  readonly publicKey: string;
  /** The key file, Synapse format ("ed25519 <version> <seed>"), as signedjson writes it. */
  readonly file: string;
}

/** A fresh key from signedjson (a test holding the Python worker gets the same from its generateKey). */
export function generateSynapseKey(version: string): Promise<SynapseKey> {
  return withPythonWorker((python) => python.generateKey(version));
}

export interface KeyFileVector {
  file: string;
  keyId: string;
  publicKey: string;
}

/** The key-file test vectors, one file per format with its key ID and public key; read at each call, so tests build their inputs. */
export function keyFileVectors(): Record<'synapse' | 'dendrite' | 'mmr', KeyFileVector> {
  return JSON.parse(readFileSync('test/fixtures/key-files.json', 'utf8')) as Record<'synapse' | 'dendrite' | 'mmr', KeyFileVector>;
}

/** `text` as a key file in a new temporary folder; returns its path. */
export function writeTempKeyFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'key-file-')), 'signing.key');
  writeFileSync(file, text);
  return file;
}

/** Configured homeservers (each with a stand-in client API) with these names and signing key paths. */
export function homeserversWithKeys(...entries: Array<{ name: string; signingKeyPath?: string }>): HomeserverConfig[] {
  return buildConfig({ homeservers: entries.map((hs) => ({ ...hs, clientApi: 'http://127.0.0.1:1' })) }).homeservers;
}

export interface Certificate {
  key: string;
  cert: string;
}

export interface TestCa {
  /** PEM of the CA certificate: federation.caFile / OutboundHttp extraCa. */
  caPem: string;
  caFile: string;
  /** A certificate for these DNS names and IP addresses, signed by the CA. */
  issue(names: string[]): Promise<Certificate>;
}

const execFileAsync = promisify(execFile);

export async function createTestCa(): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), 'test-ca-'));
  const openssl = (args: string[]) => execFileAsync('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=media-repo test CA']);
  let serial = 0;
  return {
    caPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    caFile: join(dir, 'ca.pem'),
    issue: async (names) => {
      const n = ++serial;
      const san = names.map((name) => (/^[\d.]+$|:/.test(name) ? `IP:${name}` : `DNS:${name}`)).join(',');
      writeFileSync(join(dir, `leaf${n}.ext`), `subjectAltName=${san}\n`);
      await openssl(['req', ...ec, '-keyout', `leaf${n}.key`, '-out', `leaf${n}.csr`, '-subj', `/CN=${names[0]}`]);
      await openssl(['x509', '-req', '-in', `leaf${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(1000 + n), '-out', `leaf${n}.pem`, '-days', '2', '-extfile', `leaf${n}.ext`]);
      return { key: readFileSync(join(dir, `leaf${n}.key`), 'utf8'), cert: readFileSync(join(dir, `leaf${n}.pem`), 'utf8') };
    },
  };
}
