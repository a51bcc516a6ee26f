// The filesystem datastore on a real temporary folder; digests checked with node:crypto.
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { SizeLimitError } from '../../src/storage/datastore.js';
import { FilesystemDatastore } from '../../src/storage/filesystem.js';
import { sweepStaging } from '../../src/storage/staging.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Every file below root, staging folder included, as paths relative to root. */
function allFiles(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(root.length + 1)).sort();
}

describe('FilesystemDatastore', () => {
  let root: string;
  let store: FilesystemDatastore;
  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), 'datastore-'));
    store = await FilesystemDatastore.open(root);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  test('streams, hashes and commits; the blob is then readable under its sha256, whole or by range', async () => {
    const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
    const staged = await store.writeStream(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), { maxBytes: 1_000_000 });
    expect(staged.sha256).toBe(sha256(bytes));
    expect(staged.size).toBe(bytes.length);
    expect(await store.has(staged.sha256)).toBe(false);
    await staged.commit();
    expect(await store.has(staged.sha256)).toBe(true);
    expect(allFiles(root)).toEqual([join(staged.sha256.slice(0, 2), staged.sha256.slice(2, 4), staged.sha256)]);
    expect(await readAll(await store.read(staged.sha256))).toEqual(bytes);
    expect(await readAll(await store.read(staged.sha256, { start: 10, end: 19 }))).toEqual(bytes.subarray(10, 20));
  });

  test('the first four streams open at once read 1 MiB at a time, the rest 256 KiB, and a closed one frees its place', async () => {
    const bytes = Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => i % 253));
    const staged = await store.writeStream(Readable.from([bytes]), { maxBytes: bytes.length });
    await staged.commit();
    const streams = await Promise.all(Array.from({ length: 6 }, () => store.read(staged.sha256)));
    // Opened concurrently, so not necessarily in the array's order: four of 1 MiB and two of 256 KiB.
    const sizes = streams.map((s) => s.readableHighWaterMark).sort((a, b) => b - a);
    expect(sizes).toEqual([1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 18, 1 << 18]);
    const closed = streams.slice(0, 3).map((s) => new Promise((resolve) => s.once('close', resolve)));
    expect(await readAll(streams[0]!)).toEqual(bytes);
    streams[1]!.destroy();
    streams[2]!.destroy();
    await Promise.all(closed);
    // Three still open: one more 1 MiB stream, then 256 KiB again.
    const next = [await store.read(staged.sha256), await store.read(staged.sha256)];
    expect(next.map((s) => s.readableHighWaterMark)).toEqual([1 << 20, 1 << 18]);
    expect(await readAll(streams[5]!)).toEqual(bytes);
    for (const s of [...streams, ...next]) s.destroy();
  });

  test('list yields every committed blob, never staged files or strays', async () => {
    const committed = [Buffer.from('one'), Buffer.from('two')];
    for (const bytes of committed) await (await store.writeStream(Readable.from([bytes]), { maxBytes: 100 })).commit();
    await store.writeStream(Readable.from([Buffer.from('staged only')]), { maxBytes: 100 });
    writeFileSync(join(root, 'README'), 'not a blob');
    const listed: string[] = [];
    for await (const digest of store.list()) listed.push(digest);
    expect(listed.sort()).toEqual(committed.map(sha256).sort());
  });

  test('an empty body is a blob too', async () => {
    const staged = await store.writeStream(Readable.from([]), { maxBytes: 10 });
    expect(staged.sha256).toBe(sha256(Buffer.alloc(0)));
    await staged.commit();
    expect(await readAll(await store.read(staged.sha256))).toEqual(Buffer.alloc(0));
  });

  test('past maxBytes it throws a SizeLimitError naming the limit, leaves no file, and leaves the source undestroyed', async () => {
    const source = new PassThrough();
    const writing = store.writeStream(source, { maxBytes: 10 });
    source.write(Buffer.alloc(8));
    source.write(Buffer.alloc(8));
    const error = await writing.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(SizeLimitError);
    expect((error as SizeLimitError).maxBytes).toBe(10);
    expect(allFiles(root)).toEqual([]);
    // An HTTP request body must survive, so that the 413 can still be sent on its socket.
    expect(source.destroyed).toBe(false);
  });

  test('a caller-chosen error replaces the SizeLimitError', async () => {
    const error = await store.writeStream(Readable.from([Buffer.alloc(20)]), { maxBytes: 10, tooLarge: () => new Error('remote too large') })
      .then(() => undefined, (e: unknown) => e);
    expect((error as Error).message).toBe('remote too large');
  });

  test('a source that fails midway leaves nothing behind', async () => {
    const source = new PassThrough();
    const writing = store.writeStream(source, { maxBytes: 1000 });
    source.write(Buffer.alloc(100));
    setTimeout(() => source.destroy(new Error('connection reset')), 20);
    await expect(writing).rejects.toThrow('connection reset');
    expect(allFiles(root)).toEqual([]);
  });

  test('identical content committed twice is stored once', async () => {
    const bytes = Buffer.from('same bytes');
    const [a, b] = await Promise.all([store.writeStream(Readable.from([bytes]), { maxBytes: 100 }), store.writeStream(Readable.from([bytes]), { maxBytes: 100 })]);
    await a!.commit();
    await b!.commit();
    expect(allFiles(root)).toHaveLength(1);
  });

  test('a copy staged while the blob existed still commits when that blob is deleted before the commit', async () => {
    const bytes = Buffer.from('held, then deleted');
    await (await store.writeStream(Readable.from([bytes]), { maxBytes: 100 })).commit();
    const again = await store.writeStream(Readable.from([bytes]), { maxBytes: 100 });
    await store.delete(again.sha256);
    await again.commit();
    expect(await readAll(await store.read(again.sha256))).toEqual(bytes);
  });

  test('a large body in many small chunks, arriving while the disk is busy, is stored whole under its digest', async () => {
    const chunks = Array.from({ length: 400 }, (_, i) => Buffer.alloc(64 * 1024 - (i % 7), i % 256));
    const bytes = Buffer.concat(chunks);
    const staged = await store.writeStream(Readable.from(chunks), { maxBytes: bytes.length });
    expect(staged.sha256).toBe(sha256(bytes));
    expect(staged.size).toBe(bytes.length);
    await staged.commit();
    expect(sha256(await readAll(await store.read(staged.sha256)))).toBe(sha256(bytes));
  });

  test('discard drops a staged blob; after commit it is a no-op and commit cannot repeat', async () => {
    const dropped = await store.writeStream(Readable.from([Buffer.from('drop me')]), { maxBytes: 100 });
    expect(allFiles(root)).toHaveLength(1);
    await dropped.discard();
    expect(allFiles(root)).toEqual([]);
    await expect(dropped.commit()).rejects.toThrow();

    const kept = await store.writeStream(Readable.from([Buffer.from('keep me')]), { maxBytes: 100 });
    await kept.commit();
    await kept.discard();
    expect(await store.has(kept.sha256)).toBe(true);
    await expect(kept.commit()).rejects.toThrow();
  });

  test('delete removes a blob; reading a missing blob rejects', async () => {
    const staged = await store.writeStream(Readable.from([Buffer.from('short-lived')]), { maxBytes: 100 });
    await staged.commit();
    await store.delete(staged.sha256);
    expect(await store.has(staged.sha256)).toBe(false);
    await expect(store.read(staged.sha256)).rejects.toMatchObject({ code: 'ENOENT' });
    await store.delete(staged.sha256);
  });

  test('only sha256 hex digests name files', async () => {
    for (const key of ['../../etc/passwd', 'A'.repeat(64), 'abc', `${'a'.repeat(63)}/`]) {
      await expect(store.read(key)).rejects.toThrow(RangeError);
      await expect(store.has(key)).resolves.toBe(false);
      await expect(store.delete(key)).rejects.toThrow(RangeError);
    }
  });

  test('the staging sweep removes a dead writer\'s staged files at once, a live writer\'s never, unnamed ones only when old', async () => {
    const writer = randomUUID();
    const dead = randomUUID();
    const mine = await FilesystemDatastore.open(root, 'default', { writer });
    const source = new PassThrough();
    const writing = mine.writeStream(source, { maxBytes: 100 });
    source.write('in progress');
    const tmp = join(root, '.tmp');
    const deadFile = `${dead}.${randomUUID()}.part`;
    writeFileSync(join(tmp, deadFile), 'x');
    writeFileSync(join(tmp, 'old.part'), 'y');
    writeFileSync(join(tmp, 'recent.part'), 'z');
    const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
    utimesSync(join(tmp, 'old.part'), twoDaysAgo, twoDaysAgo);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const owners = { live: async () => new Set([writer]), unnamedOlderThanMs: 24 * 3600_000 };
    expect(await sweepStaging(mine, owners)).toEqual({ staged: 2, uploads: 0 });
    const left = readdirSync(tmp).sort();
    expect(left).toHaveLength(2);
    expect(left).toContain('recent.part');
    expect(left.find((name) => name !== 'recent.part')).toMatch(new RegExp(`^${writer}\\.[0-9a-f-]{36}\\.part$`));
    source.end();
    const staged = await writing;
    await staged.commit();
    expect(await mine.has(staged.sha256)).toBe(true);
  });
});
