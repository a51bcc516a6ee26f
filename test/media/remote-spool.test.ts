// The spool between one upstream body and its readers, on a real temporary folder: every reader gets exactly
// the bytes written, whatever its pace, its range, or when it started, past the blocks kept in memory.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fillSpool, SHARED_CACHED_BLOCKS, Spool } from '../../src/media/remote-spool.js';
import { FilesystemDatastore } from '../../src/storage/filesystem.js';
import { patternBytes } from '../helpers/media-fixtures.js';

const MiB = 1024 * 1024;

async function readAll(stream: Readable, pauseEveryMs = 0): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer); // kept, not copied: what a reader was handed must never change afterwards
    if (pauseEveryMs) await new Promise((resolve) => setTimeout(resolve, pauseEveryMs));
  }
  return Buffer.concat(chunks);
}

/** Writes `bytes` in uneven chunks (never aligned with the spool's blocks), yielding between them. */
async function writeUnevenly(spool: Spool, bytes: Buffer, onChunk: (written: number) => void = () => {}): Promise<void> {
  const sizes = [1, 4095, 65_536, 300_001, 7, 1_048_577];
  for (let offset = 0, i = 0; offset < bytes.length; i++) {
    const end = Math.min(bytes.length, offset + sizes[i % sizes.length]!);
    await spool.write(bytes.subarray(offset, end));
    offset = end;
    onChunk(offset);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await spool.finish();
}

/** A reader of an empty spool that keeps each piece it is handed, already waiting for the first byte. */
async function waitingReader(spool: Spool): Promise<{ pieces: Buffer[]; reading: Promise<void> }> {
  const pieces: Buffer[] = [];
  const reader = spool.reader();
  const reading = (async () => {
    for await (const piece of reader) pieces.push(piece as Buffer);
  })();
  await new Promise((resolve) => setImmediate(resolve));
  return { pieces, reading };
}

/** Opens `count` spools beside a test's: all open spools share one cache, so each then keeps only a few blocks in memory. Returns their closing. */
async function crowd(directory: string, count: number): Promise<() => Promise<void>> {
  const spools = await Promise.all(Array.from({ length: count }, () => Spool.create(directory)));
  return async () => {
    for (const spool of spools) await spool.finish();
  };
}

type Positioned = (buffer: Buffer, offset: number, length: number, position: number) => Promise<unknown>;

type Sync = () => Promise<void>;

/** `handle` with its positioned writes and reads (and its datasync) replaced by `disk`'s, given the real ones: a slow, failing or short-moving disk over a real file. */
function withDisk(handle: FileHandle, disk: { write?: (real: Positioned) => Positioned; read?: (real: Positioned) => Positioned; datasync?: (real: Sync) => Sync }): FileHandle {
  return new Proxy(handle, {
    get(target, property) {
      const real: unknown = Reflect.get(target, property);
      const bound = typeof real === 'function' ? (real as (...a: unknown[]) => unknown).bind(target) : real;
      if (property === 'datasync' && disk.datasync) return disk.datasync(bound as Sync);
      const replace = property === 'write' ? disk.write : property === 'read' ? disk.read : undefined;
      return replace ? replace(bound as Positioned) : bound;
    },
  });
}

describe('Spool', () => {
  let directory: string;
  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), 'spool-'));
  });
  afterEach(() => rmSync(directory, { recursive: true, force: true }));

  test('many readers, fast and slow, from the start, joining midway and by ranges across blocks, all get exact bytes', async () => {
    const bytes = patternBytes(10 * MiB + 12_345, 7);
    const leave = await crowd(directory, SHARED_CACHED_BLOCKS);
    const spool = await Spool.create(directory);
    const release = spool.hold();
    const fromStart = Array.from({ length: 20 }, () => readAll(spool.reader()));
    const slow = Array.from({ length: 3 }, () => readAll(spool.reader(), 5));
    const ranges = [{ start: MiB - 10, end: 3 * MiB + 9 }, { start: 0, end: 0 }, { start: 9 * MiB, end: bytes.length - 1 }];
    const ranged = ranges.map((range) => readAll(spool.reader(range)));
    const joined: Array<Promise<Buffer>> = [];
    await writeUnevenly(spool, bytes, (written) => {
      if (written > 5 * MiB && joined.length < 5) joined.push(readAll(spool.reader()));
    });
    for (const result of await Promise.all([...fromStart, ...slow, ...joined])) expect(result.equals(bytes)).toBe(true);
    expect(joined).toHaveLength(5);
    const rangedResults = await Promise.all(ranged);
    ranges.forEach((range, i) => expect(rangedResults[i]!.equals(bytes.subarray(range.start, range.end + 1))).toBe(true));
    // After the writer is done, a late reader still reads everything, from blocks long dropped from memory.
    expect((await readAll(spool.reader())).equals(bytes)).toBe(true);
    release();
    await leave();
    expect(spool.open).toBe(false);
    expect(readdirSync(directory)).toEqual([]);
  });

  test('open spools share the blocks kept in memory: alone one keeps many, among many each keeps few and reads the rest back', async () => {
    const bytes = patternBytes(20 * MiB + 7, 9); // more than the old fixed 8 blocks, less than the shared budget
    const fileReads = async () => {
      const store = await FilesystemDatastore.open(directory);
      const file = await store.createStagingFile();
      let reads = 0;
      const spool = Spool.staging(withDisk(file.handle, { read: (real) => (...args) => (reads++, real(...args)) }));
      const release = spool.hold();
      await writeUnevenly(spool, bytes);
      expect((await readAll(spool.reader())).equals(bytes)).toBe(true);
      release();
      await file.discard();
      return reads;
    };
    expect(bytes.length).toBeLessThan(SHARED_CACHED_BLOCKS * MiB);
    expect(await fileReads()).toBe(0);
    const leave = await crowd(directory, SHARED_CACHED_BLOCKS);
    expect(await fileReads()).toBeGreaterThanOrEqual(18); // about two blocks kept: the rest comes back from the file
    await leave();
    expect(await fileReads()).toBe(0); // closed spools give their share back
  });

  test('a reader waiting at the end of what is written gets the rest as it comes, and ends with the writer', async () => {
    const spool = await Spool.create(directory);
    const { pieces, reading } = await waitingReader(spool);
    for (const word of ['first ', 'second ', 'third']) {
      await spool.write(Buffer.from(word));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(pieces.map(String)).toEqual(['first ', 'second ', 'third']); // each before the writer is done
    await spool.finish();
    await reading;
    expect(pieces.map(String)).toEqual(['first ', 'second ', 'third']);
  });

  test('its file is closed once the writer and every reader are done', async () => {
    const openFiles = () => readdirSync('/proc/self/fd').length;
    const settled = async (count: number) => {
      // Closes are asynchronous (an earlier test's too): wait for the count, up to a bound.
      for (let i = 0; i < 100 && openFiles() !== count; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      return openFiles();
    };
    let before = -1; // once no earlier close is still under way: the same count twice, 20 ms apart
    for (let i = 0; i < 50 && openFiles() !== before; i++) {
      before = openFiles();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const spool = await Spool.create(directory);
    expect(openFiles()).toBe(before + 1);
    const reading = readAll(spool.reader());
    await spool.write(patternBytes(2 * MiB + 1, 3));
    await spool.finish();
    await reading;
    expect(await settled(before)).toBe(before);
  });

  test('a reader gets its first bytes at once, then what is written in one turn of the event loop as one piece', async () => {
    const spool = await Spool.create(directory);
    const { pieces, reading } = await waitingReader(spool);
    const chunks = Array.from({ length: 16 }, (_, i) => patternBytes(i === 0 ? 100 : 64 * 1024, i)); // all in the first block
    await spool.write(chunks[0]!);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(pieces).toHaveLength(1); // the response starts with the first bytes, without waiting for more
    for (const chunk of chunks.slice(1)) await spool.write(chunk);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await spool.finish();
    await reading;
    expect(Buffer.concat(pieces).equals(Buffer.concat(chunks))).toBe(true);
    expect(pieces).toHaveLength(2); // then one large write to the client, not one per upstream chunk
  });

  test('a failed download fails every reader with its error', async () => {
    const spool = await Spool.create(directory);
    const reading = readAll(spool.reader());
    await spool.write(patternBytes(2 * MiB + 3, 9));
    spool.fail(new Error('upstream went away'));
    await expect(reading).rejects.toThrow('upstream went away');
  });

  test('a writer done or failed takes no more bytes and keeps its outcome; a closed spool takes no reader', async () => {
    const spool = await Spool.create(directory);
    const release = spool.hold();
    await spool.write(Buffer.from('all of it'));
    await spool.finish();
    await expect(spool.write(Buffer.from('more'))).rejects.toThrow('cannot write to a done spool');
    spool.fail(new Error('too late to fail'));
    await spool.finish();
    expect((await readAll(spool.reader())).toString()).toBe('all of it');
    expect(spool.length).toBe(9);
    release();
    release(); // a second call of the same release is a no-op
    expect(spool.open).toBe(false);
    expect(() => spool.reader()).toThrow('the spool is closed');
    expect(() => spool.hold()).toThrow('the spool is closed');

    const failed = await Spool.create(directory);
    failed.fail(new Error('upstream went away'));
    await expect(failed.write(Buffer.from('x'))).rejects.toThrow('cannot write to a failed spool');
  });

  test('releasing a hold twice drops one reference only: a reader still open reads every byte from the file', async () => {
    const bytes = patternBytes(3 * MiB + 5, 4);
    const spool = await Spool.create(directory);
    const release = spool.hold();
    const reader = spool.reader();
    await writeUnevenly(spool, bytes);
    release();
    release();
    expect(spool.open).toBe(true);
    expect((await readAll(reader)).equals(bytes)).toBe(true);
    expect(spool.open).toBe(false);
  });

  test('a ranged reader ends at its last byte while the writer still writes', async () => {
    const spool = await Spool.create(directory);
    await spool.write(patternBytes(100, 2));
    const timer = setTimeout(() => spool.fail(new Error('the range waited for the writer')), 2000);
    const range = await readAll(spool.reader({ start: 10, end: 19 })).finally(() => clearTimeout(timer));
    expect(range.equals(patternBytes(100, 2).subarray(10, 20))).toBe(true);
    await spool.finish();
  });

  test('a reader waiting for its first bytes gets them alone at once, not with what follows in the same turn', async () => {
    const spool = await Spool.create(directory);
    const { pieces, reading } = await waitingReader(spool);
    await spool.write(Buffer.from('first'));
    await spool.write(Buffer.from('second'));
    await spool.finish();
    await reading;
    expect(pieces.map(String)).toEqual(['first', 'second']);
  });

  test('fillSpool takes a body of exactly maxBytes, and cuts one a byte longer before it reaches the readers', async () => {
    const tooLarge = () => new Error('too large');
    const exact = await Spool.create(directory);
    const exactRead = readAll(exact.reader());
    await fillSpool(exact, Readable.from([patternBytes(600, 1), patternBytes(400, 2)]), 1000, tooLarge);
    expect((await exactRead).equals(Buffer.concat([patternBytes(600, 1), patternBytes(400, 2)]))).toBe(true);

    // As after sniffing a thumbnail: the chunks come through an iterator of their own, not the body itself.
    const over = await Spool.create(directory);
    const body = Readable.from([patternBytes(10, 3)]);
    const chunks = Readable.from([patternBytes(600, 1), patternBytes(401, 2)]);
    await expect(fillSpool(over, body, 1000, tooLarge, chunks)).rejects.toThrow('too large');
    expect(body.destroyed).toBe(true); // the upstream is not read to its end
    expect(over.length).toBe(600); // the chunk that crossed the limit never reached the spool
    over.fail(new Error('too large')); // as its flight does: the spool closes, its share of the cache returns
    expect(over.open).toBe(false);
  });

  test('on a datastore\'s staging file: every byte reaches the file, the partial last block too, hashed; staged, they are the blob', async () => {
    const store = await FilesystemDatastore.open(directory);
    const bytes = patternBytes(3 * MiB + 777, 5);
    const file = await store.createStagingFile();
    const spool = Spool.staging(file.handle);
    const release = spool.hold();
    const reading = readAll(spool.reader());
    expect(() => spool.digestHex()).toThrow('only a finished staging spool has a digest');
    await writeUnevenly(spool, bytes);
    expect((await reading).equals(bytes)).toBe(true);
    const staged = readdirSync(join(directory, '.tmp'));
    expect(staged).toHaveLength(1);
    expect(readFileSync(join(directory, '.tmp', staged[0]!)).equals(bytes)).toBe(true);

    const sha256 = createHash('sha256').update(bytes).digest('hex');
    expect(spool.digestHex()).toBe(sha256);
    const blob = await file.staged(sha256, spool.length);
    expect([blob.sha256, blob.size]).toEqual([sha256, bytes.length]);
    await blob.commit();
    release();
    expect(readdirSync(join(directory, '.tmp'))).toEqual([]);
    expect((await readAll(await store.read(sha256))).equals(bytes)).toBe(true);
  });

  test('a staging spool\'s finish waits until every block is in the file: the blob staged from it is whole', async () => {
    const store = await FilesystemDatastore.open(directory);
    const file = await store.createStagingFile();
    // A disk slower than the upstream for whole blocks; the last, partial block's write is not held up.
    const spool = Spool.staging(withDisk(file.handle, { write: (real) => async (buffer, offset, length, position) => {
      if (length === MiB) await new Promise((resolve) => setTimeout(resolve, 100));
      return real(buffer, offset, length, position);
    } }));
    const bytes = patternBytes(3 * MiB + 5, 6);
    const reading = readAll(spool.reader()); // gets the blocks still on their way to the file from memory
    await spool.write(bytes);
    await spool.finish();
    const staged = readdirSync(join(directory, '.tmp'));
    expect(readFileSync(join(directory, '.tmp', staged[0]!)).equals(bytes)).toBe(true);
    expect((await reading).equals(bytes)).toBe(true);
    await file.discard();
  });

  test.each([
    ['before the writer finishes', 20],
    ['while it waits in finish', 0],
  ])('a failed write to the spool file (%s) fails the writer and every reader, and the spool gives no digest', async (_when, pauseMs) => {
    const store = await FilesystemDatastore.open(directory);
    const file = await store.createStagingFile();
    let writes = 0;
    const spool = Spool.staging(withDisk(file.handle, { write: (real) => async (...args) => {
      if (++writes === 2) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      return real(...args);
    } }));
    const reading = readAll(spool.reader());
    const writing = (async () => {
      await spool.write(patternBytes(3 * MiB + 5, 6));
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      await spool.finish();
    })();
    await expect(writing).rejects.toThrow('no space left on device');
    await expect(reading).rejects.toThrow('no space left on device');
    await expect(spool.write(patternBytes(10, 1))).rejects.toThrow('no space left on device');
    expect(() => spool.digestHex()).toThrow('only a finished staging spool has a digest');
    await file.discard();
  });

  test('a staging spool starts a flush each time another 8 MiB are in its file, and none for the rest', async () => {
    const store = await FilesystemDatastore.open(directory);
    const file = await store.createStagingFile();
    let flushes = 0;
    let flushed = () => {};
    const spool = Spool.staging(withDisk(file.handle, { datasync: (real) => async () => {
      await real();
      flushes++;
      flushed();
    } }));
    const nextFlush = () => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no flush started')), 5000);
      flushed = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    const bytes = patternBytes(20 * MiB + 5, 3);
    const first = nextFlush();
    await spool.write(bytes.subarray(0, 8 * MiB + 1)); // 8 whole blocks for the file, 1 byte in memory
    await first;
    expect(flushes).toBe(1);
    const second = nextFlush();
    await spool.write(bytes.subarray(8 * MiB + 1, 16 * MiB + 1));
    await second;
    expect(flushes).toBe(2);
    await spool.write(bytes.subarray(16 * MiB + 1));
    await spool.finish();
    expect(flushes).toBe(2); // the last 4 MiB are flushed when the file is staged
    await file.discard();
  });

  test('on a disk slow to flush, flushes never overlap and finish waits for the one under way', async () => {
    const store = await FilesystemDatastore.open(directory);
    const file = await store.createStagingFile();
    let flushing = 0;
    let mostAtOnce = 0;
    const spool = Spool.staging(withDisk(file.handle, { datasync: (real) => async () => {
      mostAtOnce = Math.max(mostAtOnce, ++flushing);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await real();
      flushing--;
    } }));
    await writeUnevenly(spool, patternBytes(20 * MiB + 5, 3));
    expect(mostAtOnce).toBe(1);
    expect(flushing).toBe(0);
    await file.discard();
  });

  test('a failed background flush fails the writer and every reader, and the spool gives no digest', async () => {
    const store = await FilesystemDatastore.open(directory);
    const file = await store.createStagingFile();
    const spool = Spool.staging(withDisk(file.handle, { datasync: () => () => Promise.reject(Object.assign(new Error('input/output error'), { code: 'EIO' })) }));
    const reading = readAll(spool.reader());
    await expect(writeUnevenly(spool, patternBytes(20 * MiB + 5, 3))).rejects.toThrow('input/output error');
    await expect(reading).rejects.toThrow('input/output error');
    expect(() => spool.digestHex()).toThrow('only a finished staging spool has a digest');
    await file.discard();
  });

  test('short writes and short reads of the spool file still give every reader and the file exact bytes', async () => {
    const store = await FilesystemDatastore.open(directory);
    const file = await store.createStagingFile();
    const PIECE = 100 * 1024; // what a kernel may do: move fewer bytes than asked, never more
    const moveLess = (real: Positioned): Positioned => (buffer, offset, length, position) => real(buffer, offset, Math.min(length, PIECE), position);
    const short = withDisk(file.handle, { write: moveLess, read: moveLess });
    const leave = await crowd(directory, SHARED_CACHED_BLOCKS); // this spool then keeps few blocks in memory
    const spool = Spool.staging(short);
    const release = spool.hold();
    const bytes = patternBytes(12 * MiB + 3, 8);
    await writeUnevenly(spool, bytes);
    // Read after the writer is done: the first blocks have left memory and come back from the file.
    expect((await readAll(spool.reader())).equals(bytes)).toBe(true);
    expect((await readAll(spool.reader({ start: MiB - 1, end: 2 * MiB }))).equals(bytes.subarray(MiB - 1, 2 * MiB + 1))).toBe(true);
    const staged = readdirSync(join(directory, '.tmp'));
    expect(readFileSync(join(directory, '.tmp', staged[0]!)).equals(bytes)).toBe(true);
    release();
    await leave();
    await file.discard();
  });

  test('an unlinked spool does not hash: asking it for a digest is a programming error', async () => {
    const spool = await Spool.create(directory);
    await spool.finish();
    expect(() => spool.digestHex()).toThrow('only a finished staging spool has a digest');
  });
});
