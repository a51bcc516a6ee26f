// Small blobs read whole from a real folder, and the byte-bounded memory of them.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FilesystemDatastore } from '../../src/storage/filesystem.js';
import { readWholeFile, SmallBlobs } from '../../src/storage/small-blobs.js';

const KiB = 1024;
let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'small-blobs-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

async function stored(store: FilesystemDatastore, bytes: Buffer): Promise<string> {
  const staged = await store.writeStream(Readable.from([bytes]), { maxBytes: bytes.length });
  await staged.commit();
  return staged.sha256;
}

const blobPath = (sha256: string) => join(root, sha256.slice(0, 2), sha256.slice(2, 4), sha256);

test('a blob is read whole, then served from memory until the datastore deletes it', async () => {
  const store = await FilesystemDatastore.open(root, 'default', { smallBlobs: new SmallBlobs({ maxBytes: 64 * KiB, cacheBytes: 1024 * KiB }) });
  expect(store.wholeReadLimit).toBe(64 * KiB);
  const bytes = randomBytes(10 * KiB);
  const sha256 = await stored(store, bytes);
  expect((await store.readWhole(sha256, bytes.length)).equals(bytes)).toBe(true);
  unlinkSync(blobPath(sha256));
  expect((await store.readWhole(sha256, bytes.length)).equals(bytes)).toBe(true);
  await store.delete(sha256);
  await expect(store.readWhole(sha256, bytes.length)).rejects.toMatchObject({ code: 'ENOENT' });
});

test('the memory stays within its byte budget, forgetting the least recently used first', async () => {
  const blobs = new SmallBlobs({ maxBytes: 64 * KiB, cacheBytes: 10 * KiB });
  const store = await FilesystemDatastore.open(root, 'default', { smallBlobs: blobs });
  const contents = [randomBytes(4 * KiB), randomBytes(4 * KiB), randomBytes(4 * KiB)];
  const [a, b, c] = await Promise.all(contents.map((bytes) => stored(store, bytes)));
  await store.readWhole(a!, 4 * KiB);
  await store.readWhole(b!, 4 * KiB);
  await store.readWhole(a!, 4 * KiB); // a is now the most recently used
  await store.readWhole(c!, 4 * KiB);
  expect(blobs.cachedBytes).toBe(8 * KiB);
  for (const sha256 of [a!, b!, c!]) unlinkSync(blobPath(sha256));
  expect((await store.readWhole(a!, 4 * KiB)).equals(contents[0]!)).toBe(true);
  expect((await store.readWhole(c!, 4 * KiB)).equals(contents[2]!)).toBe(true);
  await expect(store.readWhole(b!, 4 * KiB)).rejects.toMatchObject({ code: 'ENOENT' });
});

test('with no cache budget every read goes to the file', async () => {
  const blobs = new SmallBlobs({ maxBytes: 64 * KiB, cacheBytes: 0 });
  const store = await FilesystemDatastore.open(root, 'default', { smallBlobs: blobs });
  const bytes = randomBytes(KiB);
  const sha256 = await stored(store, bytes);
  expect((await store.readWhole(sha256, bytes.length)).equals(bytes)).toBe(true);
  expect(blobs.cachedBytes).toBe(0);
  unlinkSync(blobPath(sha256));
  await expect(store.readWhole(sha256, bytes.length)).rejects.toMatchObject({ code: 'ENOENT' });
});

test('a file shorter than its recorded size is an error, not a short body; its descriptor is closed', async () => {
  const file = join(root, 'short');
  writeFileSync(file, randomBytes(100));
  const before = readdirSync('/proc/self/fd').length;
  await expect(readWholeFile(file, 200)).rejects.toThrow('ended after 100 of 200 bytes');
  expect((await readWholeFile(file, 100)).length).toBe(100);
  await expect(readWholeFile(file, 0)).resolves.toHaveLength(0);
  expect(readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(before);
});

test('large reads stream in ranges, exactly', async () => {
  const store = await FilesystemDatastore.open(root);
  const bytes = randomBytes(3 * 1024 * KiB + 17);
  const sha256 = await stored(store, bytes);
  const read = async (range?: { start: number; end: number }) => Buffer.concat(await (await store.read(sha256, range)).toArray() as Buffer[]);
  expect((await read()).equals(bytes)).toBe(true);
  const empty = await stored(store, Buffer.alloc(0));
  expect(await (await store.read(empty)).toArray()).toEqual([]);
  expect((await read({ start: 1024 * KiB - 1, end: 2 * 1024 * KiB + 5 })).equals(bytes.subarray(1024 * KiB - 1, 2 * 1024 * KiB + 6))).toBe(true);
});
