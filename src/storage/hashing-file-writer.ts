// The one layer between an upload's body and its staged file: hashes and counts each chunk, fails past the
// limit, and writes what accumulates while the disk is busy in one writev (no copy, no Transform between),
// flushing in the background as it goes (BackgroundFlush).
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { BackgroundFlush } from './background-flush.js';

const BATCH_BYTES = 1024 * 1024;

export class HashingFileWriter extends Writable {
  private readonly hash = createHash('sha256');
  private count = 0;
  private position = 0;
  private readonly flush: BackgroundFlush;

  constructor(private readonly handle: FileHandle, private readonly maxBytes: number, private readonly tooLarge: () => Error) {
    super({ highWaterMark: BATCH_BYTES });
    this.flush = new BackgroundFlush(handle, (error) => this.destroy(error));
  }

  get bytes(): number {
    return this.count;
  }

  digestHex(): string {
    return this.hash.digest('hex');
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeChunks([chunk], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.writeChunks(chunks.map((c) => c.chunk), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    // A background flush still running would race the close; its error (if any) is the write's.
    this.flush.idle().then(() => callback(), callback);
  }

  private writeChunks(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    for (const chunk of chunks) {
      this.count += chunk.length;
      if (this.count > this.maxBytes) {
        callback(this.tooLarge());
        return;
      }
      this.hash.update(chunk);
    }
    this.writeAll(chunks).then(() => {
      this.flush.wrote(this.position);
      callback();
    }, callback);
  }

  private async writeAll(chunks: Buffer[]): Promise<void> {
    let pending = chunks;
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending, this.position);
      this.position += bytesWritten;
      pending = unwritten(pending, bytesWritten);
    }
  }

}

/** What is left of `chunks` after a short write of `written` bytes. */
function unwritten(chunks: Buffer[], written: number): Buffer[] {
  let skip = written;
  let index = 0;
  while (index < chunks.length && skip >= chunks[index]!.length) skip -= chunks[index++]!.length;
  const rest = chunks.slice(index);
  if (rest.length > 0 && skip > 0) rest[0] = rest[0]!.subarray(skip);
  return rest;
}
