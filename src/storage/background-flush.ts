// A file being filled is flushed (fdatasync) in the background past every FLUSH_EVERY bytes written, one
// flush at a time: the disk writes while the bytes are still arriving, and the durable flush before the
// file is published has little left to do. Uploads and remote fetches fill their staging files this way.
import type { FileHandle } from 'node:fs/promises';

const FLUSH_EVERY = 8 * 1024 * 1024;

export class BackgroundFlush {
  private startedAt = 0;
  private running: Promise<void> | undefined;

  /** `failed` hears of a flush that failed; `idle()` then rejects with the same error. */
  constructor(private readonly handle: FileHandle, private readonly failed: (error: Error) => void) {}

  /** The file now holds `bytes`: a flush starts if none is under way and FLUSH_EVERY have come since the last one started. */
  wrote(bytes: number): void {
    if (this.running || bytes - this.startedAt < FLUSH_EVERY) return;
    this.startedAt = bytes;
    const running = this.handle.datasync().then(() => {
      this.running = undefined;
    });
    running.catch(this.failed);
    this.running = running;
  }

  /** Settles when no flush is under way (a closing file must not race one); rejects if the last one failed. */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }
}
