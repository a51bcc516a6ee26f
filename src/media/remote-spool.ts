// A growing temp file between one remote download and its readers (the waiting clients and the datastore).
// The writer goes at disk speed whatever the readers do, so a slow client never holds up the upstream
// connection and nothing is buffered in memory; each reader follows the file as it grows, at its own pace.
// The file is unlinked as soon as it is opened: it vanishes with its last reader, even after a crash. Or it
// is the datastore's own staging file (Spool.staging): then the bytes go to disk once, hashed on the way.
// Readers share the bytes in 1 MiB blocks: the one being written is in memory, and complete ones are kept
// once read, up to a budget all open spools share, so clients moving together (the usual case) cost one
// file read per block between them, not one small read (and buffer) each per chunk of the upstream body.
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BackgroundFlush } from '../storage/background-flush.js';
import type { ByteRange } from '../storage/datastore.js';

const BLOCK = 1024 * 1024;
/**
 * Complete blocks kept in memory by all open spools together, each spool its share, least recently used
 * dropped first. A hundred clients of one media drift tens of MiB apart; with less, the ones behind
 * read each block back from the file into a fresh buffer, which cost more than their sockets' writes.
 */
export const SHARED_CACHED_BLOCKS = 32;
/** What a spool keeps however many are open: the block its clients are on and the next. */
const MIN_CACHED_BLOCKS = 2;
let openSpools = 0;
/** Complete blocks not yet in the file (kept in memory until they are); the writer waits beyond this. */
const MAX_UNWRITTEN = 4;

export class Spool {
  private written = 0;
  private state: 'writing' | 'done' | 'failed' = 'writing';
  private failure: Error | undefined;
  /** The writer's reference plus one per open reader; the file closes at zero. */
  private refs = 1;
  private readonly waiters = new Set<() => void>();
  /** Readers that have had no byte yet: woken by the very next write, so their response starts at once. */
  private readonly firstWaiters = new Set<() => void>();
  private wakeScheduled = false;
  /** The block being filled: bytes [written - written % BLOCK, written). */
  private current: Buffer = Buffer.allocUnsafe(BLOCK);
  private readonly blocks = new Map<number, Promise<Buffer>>();
  private readonly unwritten = new Map<number, { block: Buffer; writing: Promise<void> }>();
  private writeError: Error | undefined;
  /** Bytes of complete blocks in the file. */
  private inFile = 0;
  /** Only a staging spool's file is to be kept (an unlinked one vanishes anyway), so only it is flushed as it fills. */
  private readonly flush: BackgroundFlush | undefined;

  private constructor(private readonly handle: FileHandle, private readonly hash?: Hash) {
    openSpools++;
    this.flush = hash ? new BackgroundFlush(handle, (error) => this.failWrite(error)) : undefined;
  }

  static async create(directory: string): Promise<Spool> {
    await mkdir(directory, { recursive: true });
    const path = join(directory, `${randomUUID()}.spool`);
    const handle = await open(path, 'wx+');
    await unlink(path);
    return new Spool(handle);
  }

  /** A spool on a datastore's staging file (open for reading and writing), hashing what it writes; closes it with its last reader. */
  static staging(handle: FileHandle): Spool {
    return new Spool(handle, createHash('sha256'));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.written;
  }

  /** False once the writer is done and every reader has closed: no new reader can start. */
  get open(): boolean {
    return this.refs > 0;
  }

  /** Readers see `chunk` at once; the file gets whole blocks in the background, at most MAX_UNWRITTEN behind. */
  async write(chunk: Buffer): Promise<void> {
    if (this.writeError) throw this.writeError;
    if (this.state !== 'writing') throw new Error(`cannot write to a ${this.state} spool`);
    this.remember(chunk);
    wakeAll(this.firstWaiters);
    this.wakeSoon();
    if (this.unwritten.size >= MAX_UNWRITTEN) await this.unwritten.values().next().value!.writing;
  }

  /** All bytes are in, and in the file (the last, partial block also stays in memory); readers end at the current length. Drops the writer's reference. */
  async finish(): Promise<void> {
    if (this.writeError) throw this.writeError; // a block that never reached the file: nothing may be staged from it
    if (this.state !== 'writing') return;
    await Promise.all([...this.unwritten.values()].map((u) => u.writing));
    await this.flush?.idle().catch(() => undefined); // a failed flush is the writeError below, unless a write failed first
    if (this.writeError) throw this.writeError;
    const tail = this.written % BLOCK;
    if (tail > 0) await writeFully(this.handle, this.current.subarray(0, tail), this.written - tail);
    this.state = 'done';
    this.wake();
    this.release();
  }

  /** The download failed: every reader errors with `error`. Drops the writer's reference. */
  fail(error: Error): void {
    if (this.state !== 'writing') return;
    this.state = 'failed';
    this.failure = error;
    this.wake();
    this.release();
  }

  /** Keeps the file open (for readers yet to come) until the returned function is called. */
  hold(): () => void {
    if (!this.open) throw new Error('the spool is closed');
    this.refs++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.release();
    };
  }

  /** Reads from the start (or a range) and follows the file until the writer is done. */
  reader(range?: ByteRange): Readable {
    if (!this.open) throw new Error('the spool is closed');
    this.refs++;
    const start = range?.start ?? 0;
    let position = start;
    const last = range?.end ?? Infinity;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.release();
    };
    const stream = new Readable({
      highWaterMark: BLOCK,
      read: () => {
        this.next(position, last, position === start).then(
          (chunk) => {
            if (chunk === null) {
              stream.push(null);
              return;
            }
            position += chunk.length;
            stream.push(chunk);
          },
          (error: Error) => stream.destroy(error),
        );
      },
      destroy: (error, callback) => {
        release();
        callback(error);
      },
    });
    stream.once('end', release);
    return stream;
  }

  /** The next bytes at `position` (up to `last`, at most to the end of its block), waiting for the writer; null at the end. */
  private async next(position: number, last: number, first: boolean): Promise<Buffer | null> {
    for (;;) {
      if (position > last) return null;
      if (this.state === 'failed') throw this.failure!;
      const end = Math.min(this.written, last + 1);
      if (position < end) {
        const index = Math.floor(position / BLOCK);
        const block = await this.block(index);
        return block.subarray(position - index * BLOCK, Math.min(block.length, end - index * BLOCK));
      }
      if (this.state === 'done') return null;
      await new Promise<void>((resolve) => (first ? this.firstWaiters : this.waiters).add(resolve));
    }
  }

  /** The sha256 of every byte written, once finished; only a staging spool hashes. */
  digestHex(): string {
    if (!this.hash || this.state !== 'done') throw new Error('only a finished staging spool has a digest');
    return this.hash.digest('hex');
  }

  /** Appends bytes to the current block; a full one goes to the file, and to the cache once there. */
  private remember(bytes: Buffer): void {
    this.hash?.update(bytes);
    let offset = 0;
    while (offset < bytes.length) {
      const filled = this.written % BLOCK;
      const copied = bytes.copy(this.current, filled, offset);
      offset += copied;
      this.written += copied;
      if (filled + copied === BLOCK) {
        this.writeBlock(this.written / BLOCK - 1, this.current);
        this.current = Buffer.allocUnsafe(BLOCK);
      }
    }
  }

  private writeBlock(index: number, block: Buffer): void {
    const writing = writeFully(this.handle, block, index * BLOCK).then(
      () => {
        this.cache(index, Promise.resolve(block));
        this.inFile += block.length;
        this.flush?.wrote(this.inFile);
      },
      (error: Error) => this.failWrite(error), // before the block leaves memory: no reader may look for it in the file
    ).finally(() => this.unwritten.delete(index));
    this.unwritten.set(index, { block, writing });
  }

  private failWrite(error: Error): void {
    this.writeError ??= error;
    this.fail(error);
  }

  /** Block `index`: the one being filled (as far as it is), or a complete one from memory or the file. */
  private block(index: number): Buffer | Promise<Buffer> {
    if (index === Math.floor(this.written / BLOCK)) return this.current.subarray(0, this.written % BLOCK);
    const unwritten = this.unwritten.get(index);
    if (unwritten) return unwritten.block;
    const cached = this.blocks.get(index);
    if (cached) {
      this.blocks.delete(index);
      this.blocks.set(index, cached);
      return cached;
    }
    const reading = this.readBlock(index);
    this.cache(index, reading);
    reading.catch(() => this.blocks.get(index) === reading && this.blocks.delete(index));
    return reading;
  }

  private cache(index: number, block: Promise<Buffer>): void {
    this.blocks.set(index, block);
    const share = Math.max(MIN_CACHED_BLOCKS, Math.floor(SHARED_CACHED_BLOCKS / openSpools));
    while (this.blocks.size > share) this.blocks.delete(this.blocks.keys().next().value!);
  }

  private async readBlock(index: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(BLOCK);
    let filled = 0;
    while (filled < BLOCK) {
      const { bytesRead } = await this.handle.read(buffer, filled, BLOCK - filled, index * BLOCK + filled);
      if (bytesRead === 0) throw new Error('the spool file is shorter than what was written to it');
      filled += bytesRead;
    }
    return buffer;
  }

  /**
   * Readers waiting at the end wake once per turn of the event loop, not once per chunk: they then take
   * all the chunks of that turn in one piece, so a client gets a few large writes instead of many small ones.
   */
  private wakeSoon(): void {
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      this.wake();
    });
  }

  private wake(): void {
    wakeAll(this.firstWaiters);
    wakeAll(this.waiters);
  }

  private release(): void {
    if (--this.refs > 0) return;
    openSpools--;
    this.blocks.clear();
    void this.handle.close().catch(() => undefined);
  }
}

function wakeAll(waiters: Set<() => void>): void {
  const waiting = [...waiters];
  waiters.clear();
  for (const resolve of waiting) resolve();
}

async function writeFully(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  for (let offset = 0; offset < buffer.length; ) {
    const { bytesWritten } = await handle.write(buffer, offset, buffer.length - offset, position + offset);
    offset += bytesWritten;
  }
}

/**
 * The upstream body into the spool at disk speed; past maxBytes the body is cut and `tooLarge` thrown.
 * `chunks`: the body's bytes when some were already read from it (sniffed).
 */
export async function fillSpool(spool: Spool, body: Readable, maxBytes: number, tooLarge: () => Error, chunks: AsyncIterable<Buffer> = body): Promise<void> {
  let total = 0;
  for await (const chunk of chunks) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) {
      body.destroy();
      throw tooLarge();
    }
    await spool.write(chunk as Buffer);
  }
  await spool.finish();
}
