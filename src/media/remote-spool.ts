// A growing temp file between one remote download and its readers (the waiting clients and the datastore).
// The writer goes at disk speed whatever the readers do, so a slow client never holds up the upstream
// connection and nothing is buffered in memory; each reader follows the file as it grows, at its own pace.
// The file is unlinked as soon as it is opened: it vanishes with its last reader, even after a crash.
import { randomUUID } from 'node:crypto';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ByteRange } from '../storage/datastore.js';

const READ_CHUNK = 256 * 1024;

export class Spool {
  private written = 0;
  private state: 'writing' | 'done' | 'failed' = 'writing';
  private failure: Error | undefined;
  /** The writer's reference plus one per open reader; the file closes at zero. */
  private refs = 1;
  private readonly waiters = new Set<() => void>();

  private constructor(private readonly handle: FileHandle) {}

  static async create(directory: string): Promise<Spool> {
    await mkdir(directory, { recursive: true });
    const path = join(directory, `${randomUUID()}.spool`);
    const handle = await open(path, 'wx+');
    await unlink(path);
    return new Spool(handle);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.written;
  }

  /** False once the writer is done and every reader has closed: no new reader can start. */
  get open(): boolean {
    return this.refs > 0;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.state !== 'writing') throw new Error(`cannot write to a ${this.state} spool`);
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, offset, chunk.length - offset, this.written);
      offset += bytesWritten;
      this.written += bytesWritten;
    }
    this.wake();
  }

  /** All bytes are in; readers end at the current length. Drops the writer's reference. */
  finish(): void {
    if (this.state !== 'writing') return;
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
    let position = range?.start ?? 0;
    const last = range?.end ?? Infinity;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.release();
    };
    const stream = new Readable({
      highWaterMark: READ_CHUNK,
      read: () => {
        this.next(position, last).then(
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

  /** The next bytes at `position` (up to `last`), waiting for the writer; null at the end. */
  private async next(position: number, last: number): Promise<Buffer | null> {
    for (;;) {
      if (position > last) return null;
      if (this.state === 'failed') throw this.failure!;
      const available = Math.min(this.written, last + 1) - position;
      if (available > 0) {
        const buffer = Buffer.allocUnsafe(Math.min(available, READ_CHUNK));
        const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, position);
        return buffer.subarray(0, bytesRead);
      }
      if (this.state === 'done') return null;
      await new Promise<void>((resolve) => this.waiters.add(resolve));
    }
  }

  private wake(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const resolve of waiting) resolve();
  }

  private release(): void {
    if (--this.refs === 0) void this.handle.close().catch(() => undefined);
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
  spool.finish();
}
