// Blobs as files under <root>/<aa>/<bb>/<sha256>; uploads are staged in <root>/.tmp/<writer>.<uuid>.part and
// linked into place (the staged name goes once the blob's row is written).
import { randomUUID } from 'node:crypto';
import { close, createReadStream, fstat, open as openFd } from 'node:fs';
import { access, link, mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { isSha256Hex, SizeLimitError, stagedBlob, type ByteRange, type Datastore, type StagedBlob, type StagingEntry, type StagingFile, type WriteLimits } from './datastore.js';
import { HashingFileWriter } from './hashing-file-writer.js';
import { feedWithoutDestroying } from './hashing-meter.js';
import { withFileSpan } from './file-spans.js';
import { blobPath, type ProxyOffload } from './proxy-offload.js';
import { SmallBlobs } from './small-blobs.js';
import { stagingName, writerOf } from './staging.js';

const TEMP_DIR = '.tmp';
// 1 MiB reads run large downloads at the runtime's ceiling (64 KiB ones at a third of it); the range's
// end bounds each read, so a smaller body gets one buffer of its own size.
const READ_CHUNK_BYTES = 1 << 20;
// Beyond a few streams at once the CPU, not the read size, bounds the total, and each stream holds about
// two reads (one being read, one queued on its socket): the rest read 256 KiB at a time.
const LARGE_READ_STREAMS = 4;
const SHARED_READ_CHUNK_BYTES = 1 << 18;

export class FilesystemDatastore implements Datastore {
  private readonly tempDir: string;
  private openReads = 0;

  private constructor(
    readonly id: string,
    readonly root: string,
    private readonly writer: string,
    private readonly smallBlobs: SmallBlobs,
    readonly proxyOffload?: ProxyOffload,
  ) {
    this.tempDir = join(root, TEMP_DIR);
  }

  /** Creates the folders; `writer`: the instance id staged files are named by. */
  static async open(root: string, id = 'default', options: { writer?: string; smallBlobs?: SmallBlobs; proxyOffload?: ProxyOffload } = {}): Promise<FilesystemDatastore> {
    const smallBlobs = options.smallBlobs ?? new SmallBlobs({ maxBytes: 0, cacheBytes: 0 });
    const store = new FilesystemDatastore(id, root, options.writer ?? randomUUID(), smallBlobs, options.proxyOffload);
    await mkdir(store.tempDir, { recursive: true });
    return store;
  }

  async writeStream(body: Readable, limits: WriteLimits): Promise<StagedBlob> {
    const file = await this.createStagingFile();
    try {
      const writer = new HashingFileWriter(file.handle, limits.maxBytes, limits.tooLarge ?? (() => new SizeLimitError(limits.maxBytes)));
      feedWithoutDestroying(body, writer);
      await finished(writer);
      return await file.staged(writer.digestHex(), writer.bytes);
    } catch (error) {
      await file.discard();
      throw error;
    } finally {
      await file.handle.close().catch(() => undefined);
    }
  }

  async createStagingFile(): Promise<StagingFile> {
    const temp = join(this.tempDir, `${stagingName(this.writer)}.part`);
    const handle = await open(temp, 'wx+');
    return {
      handle,
      staged: async (sha256, size) => {
        // Bytes we already hold need no flush (commit drops this copy); otherwise they are on disk before a row can point at them.
        const synced = !(await this.has(sha256));
        if (synced) await handle.sync();
        return this.staged(temp, sha256, size, synced);
      },
      discard: () => rm(temp, { force: true }),
    };
  }

  async read(sha256: string, range?: ByteRange): Promise<Readable> {
    // A plain fd, not a FileHandle: its stream reads by callback, and closes the fd when it ends or is destroyed.
    const fd = await new Promise<number>((resolve, reject) => openFd(this.pathOf(sha256), 'r', (e, opened) => (e ? reject(e) : resolve(opened))));
    const end = range?.end ?? await new Promise<number>((resolve, reject) => fstat(fd, (e, stats) => {
      if (!e) return resolve(stats.size - 1);
      close(fd, () => reject(e));
    }));
    const start = range?.start ?? 0;
    const chunkBytes = this.openReads < LARGE_READ_STREAMS ? READ_CHUNK_BYTES : SHARED_READ_CHUNK_BYTES;
    const stream = createReadStream('', { fd, start, end: Math.max(end, 0), highWaterMark: chunkBytes });
    this.openReads += 1;
    stream.once('close', () => { this.openReads -= 1; });
    return withFileSpan(stream, { fd, start, end, chunkBytes });
  }

  get wholeReadLimit(): number {
    return this.smallBlobs.maxBytes;
  }

  readWhole(sha256: string, size: number): Promise<Buffer> {
    return this.smallBlobs.read(sha256, () => this.pathOf(sha256), size);
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await access(this.pathOf(sha256));
      return true;
    } catch {
      return false;
    }
  }

  async delete(sha256: string): Promise<void> {
    this.smallBlobs.forget(sha256);
    await rm(this.pathOf(sha256), { force: true });
  }

  async *list(): AsyncIterable<string> {
    for (const first of await readdir(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(first)) continue;
      for (const second of await readdir(join(this.root, first))) {
        for (const name of await readdir(join(this.root, first, second))) {
          if (isSha256Hex(name) && name.startsWith(first + second)) yield name;
        }
      }
    }
  }

  private staged(temp: string, sha256: string, size: number, synced: boolean): StagedBlob {
    return stagedBlob(this.id, sha256, size, {
      publish: async () => {
        const target = this.pathOf(sha256);
        if (await this.has(sha256)) return;
        if (!synced) await syncPath(temp); // the copy we held was deleted meanwhile: this one must be durable now
        synced = true;
        await mkdir(join(target, '..'), { recursive: true });
        // A second name, not a rename: the staged copy stays, to publish again should the blob be deleted before its row exists.
        await link(temp, target).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error;
        });
        await syncPath(join(target, '..'));
      },
      discard: () => rm(temp, { force: true }),
    });
  }

  private pathOf(sha256: string): string {
    if (!isSha256Hex(sha256)) throw new RangeError('not a sha256 hex digest');
    return join(this.root, blobPath(sha256));
  }

  async *listStaging(): AsyncIterable<StagingEntry> {
    for (const name of await readdir(this.tempDir)) {
      const info = await stat(join(this.tempDir, name)).catch(() => undefined);
      if (info) yield { name, writer: writerOf(name), modifiedMs: info.mtimeMs };
    }
  }

  async removeStaging(entry: StagingEntry): Promise<void> {
    await rm(join(this.tempDir, basename(entry.name)), { force: true });
  }
}

/** fsync of a file, or of a directory to make a rename durable (the new entry survives a crash). */
async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
