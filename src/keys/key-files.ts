// Signing-key files in the three formats admins already have: Synapse's, Dendrite's and
// matrix-media-repo's (Go). Output is byte-for-byte what matrix-media-repo's own tools write.
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decodeBase64, encodeBase64 } from '../matrix/base64.js';
import { SEED_LENGTH, generateSeed } from '../matrix/ed25519.js';
import { encodePemBlock, looksLikePem, parsePemBlocks, PemError, type PemBlock } from './pem.js';

export type KeyFileFormat = 'synapse' | 'dendrite' | 'mmr';
export const KEY_FILE_FORMATS: readonly KeyFileFormat[] = ['mmr', 'synapse', 'dendrite'];

/** An Ed25519 signing key; its key ID is `ed25519:${version}`. */
export interface SigningKey {
  version: string;
  seed: Uint8Array;
}

export interface ParsedKeyFile {
  format: KeyFileFormat;
  keys: SigningKey[];
}

/** Names the file and the problem; never carries key material. */
export class KeyFileError extends Error {
  constructor(
    readonly fileName: string,
    readonly problem: string,
  ) {
    super(`${fileName}: ${problem}`);
    this.name = 'KeyFileError';
  }
}

/** A problem found inside the text; parseKeyFile adds the file name. */
class KeyFileProblem extends Error {}

const ALGORITHM = 'ed25519';
const VERSION = /^[a-zA-Z0-9_]+$/;
const KEY_ID = /^ed25519:([a-zA-Z0-9_]+)$/;
// Strict standard alphabet: Python's decoder silently drops URL-safe characters, so they must not pass here.
const STANDARD_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const PEM_TYPES: Record<string, 'dendrite' | 'mmr'> = { 'MATRIX PRIVATE KEY': 'dendrite', 'MMR PRIVATE KEY': 'mmr' };
const MMR_FORMAT_VERSION = '1';
const VERSION_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const GENERATED_VERSION_LENGTH = 6;

export function keyId(key: SigningKey): string {
  return `${ALGORITHM}:${key.version}`;
}

/** 6 characters of [a-zA-Z0-9], like matrix-media-repo's and Dendrite's generated versions. */
export function generateKeyVersion(): string {
  let version = '';
  // randomInt draws by rejection sampling, so every character is equally likely.
  for (let i = 0; i < GENERATED_VERSION_LENGTH; i++) version += VERSION_ALPHABET[randomInt(VERSION_ALPHABET.length)];
  return version;
}

export function generateSigningKey(): SigningKey {
  return { version: generateKeyVersion(), seed: generateSeed() };
}

/** Detects the format (PEM block type, else Synapse's line format) and reads every key. */
export function parseKeyFile(text: string, fileName: string): ParsedKeyFile {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') throw new KeyFileError(fileName, 'contains no signing keys');
  try {
    const parsed = looksLikePem(body) ? parsePemKeys(body) : { format: 'synapse' as const, keys: parseSynapseKeys(body) };
    assertUniqueVersions(parsed.keys);
    return parsed;
  } catch (error) {
    if (error instanceof PemError || error instanceof KeyFileProblem) throw new KeyFileError(fileName, error.message);
    throw error;
  }
}

export function formatKeyFile(keys: readonly SigningKey[], format: KeyFileFormat): string {
  if (keys.length === 0) throw new RangeError('no signing keys to write');
  keys.forEach(assertValidKey);
  switch (format) {
    case 'synapse':
      // matrix-media-repo separates lines and ends without a newline; Synapse reads that as written.
      return keys.map((key) => `${ALGORITHM} ${key.version} ${encodeBase64(key.seed)}`).join('\n');
    case 'dendrite':
      return keys.map((key) => encodePemBlock('MATRIX PRIVATE KEY', { 'Key-ID': keyId(key) }, key.seed)).join('');
    case 'mmr':
      return keys
        .map((key) => encodePemBlock('MMR PRIVATE KEY', { 'Key-ID': keyId(key), Version: MMR_FORMAT_VERSION }, key.seed))
        .join('');
  }
}

export function isKeyFileFormat(value: string): value is KeyFileFormat {
  return (KEY_FILE_FORMATS as readonly string[]).includes(value);
}

export async function readKeyFile(path: string): Promise<ParsedKeyFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new KeyFileError(path, `cannot read: ${describeFsError(error)}`);
  }
  return decodeKeyFile(bytes, path);
}

/** readKeyFile without the thread pool: start-up reads thousands of small files, where each async read costs ~5x the CPU. */
export function readKeyFileSync(path: string): ParsedKeyFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new KeyFileError(path, `cannot read: ${describeFsError(error)}`);
  }
  return decodeKeyFile(bytes, path);
}

function decodeKeyFile(bytes: Buffer, path: string): ParsedKeyFile {
  if (bytes.length === 0) throw new KeyFileError(path, 'file is empty');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new KeyFileError(path, 'not a text file (invalid UTF-8)');
  }
  return parseKeyFile(text, path);
}

/**
 * Writes owner-only (0600) through a temporary file in the same directory and a rename, so a
 * failure never leaves a half-written key file and an existing file is replaced whole.
 */
export async function writeKeyFile(path: string, keys: readonly SigningKey[], format: KeyFileFormat): Promise<void> {
  const content = formatKeyFile(keys, format);
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw new KeyFileError(path, `cannot write: ${describeFsError(error)}`);
  }
}

function parseSynapseKeys(text: string): SigningKey[] {
  const keys: SigningKey[] = [];
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const line = rawLine.trim();
    if (line === '') return;
    const where = `line ${index + 1}`;
    const fields = line.split(/\s+/);
    if (fields.length !== 3) {
      throw new KeyFileProblem(`${where}: expected "ed25519 <version> <base64 seed>", found ${fields.length} fields`);
    }
    const [algorithm, version, seedBase64] = fields;
    if (algorithm !== ALGORITHM) throw new KeyFileProblem(`${where}: unsupported algorithm (only ed25519 keys are supported)`);
    if (!VERSION.test(version)) throw new KeyFileProblem(`${where}: key version must be made of [a-zA-Z0-9_]`);
    keys.push({ version, seed: decodeSeed(seedBase64, where) });
  });
  return keys;
}

function parsePemKeys(text: string): ParsedKeyFile {
  const blocks = parsePemBlocks(text);
  const format = PEM_TYPES[blocks[0].type];
  const keys = blocks.map((block) => {
    const blockFormat = PEM_TYPES[block.type];
    if (!blockFormat) {
      throw new KeyFileProblem(`line ${block.line}: unsupported PEM block "${block.type}" (expected MATRIX PRIVATE KEY or MMR PRIVATE KEY)`);
    }
    if (blockFormat !== format) throw new KeyFileProblem(`line ${block.line}: file mixes Dendrite and MMR key blocks`);
    return pemBlockKey(block, blockFormat);
  });
  return { format, keys };
}

function pemBlockKey(block: PemBlock, format: 'dendrite' | 'mmr'): SigningKey {
  const where = `line ${block.line}`;
  if (format === 'mmr' && block.headers.get('Version') !== MMR_FORMAT_VERSION) {
    throw new KeyFileProblem(`${where}: unsupported MMR key format version (expected "Version: ${MMR_FORMAT_VERSION}")`);
  }
  const id = block.headers.get('Key-ID');
  if (id === undefined || id === '') throw new KeyFileProblem(`${where}: missing Key-ID header`);
  const match = KEY_ID.exec(id);
  if (!match) throw new KeyFileProblem(`${where}: Key-ID must be "ed25519:" followed by [a-zA-Z0-9_] characters`);
  return { version: match[1], seed: decodeSeed(block.body, where) };
}

function decodeSeed(text: string, where: string): Uint8Array {
  if (!STANDARD_BASE64.test(text)) throw new KeyFileProblem(`${where}: key is not valid Base64`);
  let seed: Buffer;
  try {
    seed = decodeBase64(text);
  } catch {
    throw new KeyFileProblem(`${where}: key is not valid Base64`);
  }
  if (seed.length !== SEED_LENGTH) throw new KeyFileProblem(`${where}: key is ${seed.length} bytes, expected ${SEED_LENGTH}`);
  return new Uint8Array(seed);
}

function assertUniqueVersions(keys: readonly SigningKey[]): void {
  const seen = new Set<string>();
  for (const key of keys) {
    if (seen.has(key.version)) throw new KeyFileProblem(`key version "${key.version}" appears more than once`);
    seen.add(key.version);
  }
}

function assertValidKey(key: SigningKey): void {
  if (!VERSION.test(key.version)) throw new RangeError('signing key version must be made of [a-zA-Z0-9_]');
  if (key.seed.length !== SEED_LENGTH) throw new RangeError(`signing key seed must be ${SEED_LENGTH} bytes`);
}

function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a parent path is not a directory';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on device';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
