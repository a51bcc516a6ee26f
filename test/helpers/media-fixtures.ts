// Test media and what the tests inspect from outside the service: files in the datastore folder and rows
// in the tables.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningService } from '../../src/service.js';

export const sha256Hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** Every committed blob file under the datastore root (the staging folder excluded). */
export function blobFiles(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && !join(entry.parentPath, entry.name).startsWith(join(root, '.tmp')))
    .map((entry) => entry.name)
    .sort();
}

export function stagedFiles(root: string): string[] {
  return readdirSync(join(root, '.tmp'));
}

export function storageRoot(service: RunningService): string {
  return service.services.config.datastores[0]!.opts.path;
}

export async function countRows(service: RunningService, table: 'media' | 'thumbnails'): Promise<number> {
  const [row] = await service.services.db.knex(table).count<{ count: string | number }[]>({ count: '*' });
  return Number(row!.count);
}

/** Rows, blob files and staged files: "nothing changed" compares two of these. */
export async function snapshot(service: RunningService) {
  const root = storageRoot(service);
  return { media: await countRows(service, 'media'), blobs: blobFiles(root), staged: stagedFiles(root) };
}

/** Deterministic bytes that are not all alike (so truncation or reordering shows). */
export function patternBytes(size: number, seed = 1): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}
