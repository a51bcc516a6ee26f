// The master key that encrypts private signing keys at rest (AES-256-GCM), bound to the row it protects.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { readSecret, type Secret } from '../config/config.js';

const VERSION = 1;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;

export class MasterKey {
  private constructor(private readonly key: Buffer) {}

  /** Accepts 32 bytes as 64 hex digits or as Base64 (padded or not). */
  static parse(text: string, what: string): MasterKey {
    const trimmed = text.trim();
    const bytes = /^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
    if (bytes.length !== 32) throw new Error(`${what}: the master key must be 32 bytes, as 64 hex digits or Base64`);
    return new MasterKey(bytes);
  }

  static load(secret: Secret): MasterKey {
    return MasterKey.parse(readSecret(secret, 'masterKey'), 'masterKey');
  }

  /** For a bare machine: creates the key file (mode 0600) on first use and reads it afterwards. */
  static loadOrCreateFile(file: string): { key: MasterKey; created: boolean } {
    const created = !existsSync(file);
    if (created) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    }
    return { key: MasterKey.load({ file }), created };
  }

  /** `context` (e.g. server name and key ID) is authenticated, so a ciphertext moved to another row fails. */
  encrypt(plaintext: Uint8Array, context: string): Buffer {
    const nonce = randomBytes(NONCE_LENGTH);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.of(VERSION), nonce, cipher.getAuthTag(), body]);
  }

  decrypt(sealed: Uint8Array, context: string): Buffer {
    const data = Buffer.from(sealed);
    if (data.length < 1 + NONCE_LENGTH + TAG_LENGTH || data[0] !== VERSION) throw new Error('encrypted key: unknown format');
    const decipher = createDecipheriv('aes-256-gcm', this.key, data.subarray(1, 1 + NONCE_LENGTH));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(data.subarray(1 + NONCE_LENGTH, 1 + NONCE_LENGTH + TAG_LENGTH));
    try {
      return Buffer.concat([decipher.update(data.subarray(1 + NONCE_LENGTH + TAG_LENGTH)), decipher.final()]);
    } catch {
      throw new Error(`encrypted key for ${context}: does not decrypt under this master key (wrong master key?)`);
    }
  }
}
