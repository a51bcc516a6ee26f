// Test media and what the tests inspect from outside the service: blobs in the default datastore (folder
// or bucket) and rows in the tables.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningService } from '../../src/service.js';
import { S3Datastore } from '../../src/storage/s3.js';
import { s3Listing } from './s3-server.js';
import { testS3Datastore, testS3Server } from './service-under-test.js';

export const sha256Hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** Every committed blob of the service's default datastore, by sha256 (folder or bucket). */
export async function blobFiles(service: RunningService): Promise<string[]> {
  const store = service.services.datastores.get('default');
  if (store instanceof S3Datastore) return (await s3Listing(store, await testS3Server())).blobs;
  return blobFilesIn(storageRoot(service));
}

/** Every committed blob file under a file datastore's folder (the staging folder excluded). */
export function blobFilesIn(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && !join(entry.parentPath, entry.name).startsWith(join(root, '.tmp')))
    .map((entry) => entry.name)
    .sort();
}

/** Staged copies in the default datastore (S3: staging objects and unfinished multipart uploads). */
export async function stagedFiles(service: RunningService): Promise<string[]> {
  const store = service.services.datastores.get('default');
  if (store instanceof S3Datastore) return (await s3Listing(store, await testS3Server())).staged;
  return readdirSync(join(storageRoot(service), '.tmp'));
}

/** The default datastore's folder (file datastores only). */
function storageRoot(service: RunningService): string {
  return (service.services.config.datastores[0]!.opts as { path: string }).path;
}

/** A `datastores` config for a second instance on the service's default datastore: its folder, or its bucket prefix. */
export async function sameDatastores(service: RunningService): Promise<Record<string, unknown>[]> {
  const store = service.services.datastores.get('default');
  if (store instanceof S3Datastore) return [await testS3Datastore(store.options.prefix)];
  return [{ id: 'default', type: 'file', forKinds: ['all'], opts: { path: storageRoot(service) } }];
}

export async function countRows(service: RunningService, table: 'media' | 'thumbnails'): Promise<number> {
  const [row] = await service.services.db.knex(table).count<{ count: string | number }[]>({ count: '*' });
  return Number(row!.count);
}

/** Rows, blobs and staged copies: "nothing changed" compares two of these. */
export async function snapshot(service: RunningService) {
  return { media: await countRows(service, 'media'), blobs: await blobFiles(service), staged: await stagedFiles(service) };
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
