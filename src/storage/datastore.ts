// Media bytes live in a datastore, addressed by their sha256; metadata lives in PostgreSQL, and every row
// names the datastore holding its bytes.
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ProxyOffload } from './proxy-offload.js';

/** Inclusive byte offsets, as in HTTP Range and fs.createReadStream. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface WriteLimits {
  maxBytes: number;
  /** The error thrown past maxBytes; default SizeLimitError. */
  tooLarge?: () => Error;
}

/** A write went past its byte limit; the HTTP layer answers it as 413 M_TOO_LARGE. */
export class SizeLimitError extends Error {
  constructor(readonly maxBytes: number) {
    super(`The content is larger than the limit of ${maxBytes} bytes`);
    this.name = 'SizeLimitError';
  }
}

/** The datastore could not be reached or failed (S3 down, 5xx, a dropped connection): 503 to the client. */
export class DatastoreUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DatastoreUnavailableError';
  }
}

/** What a redirect target must answer with, where the datastore can make it (presigned S3 URLs). */
export interface RedirectHeaders {
  contentType: string;
  contentDisposition: string;
}

/** Staging leftovers removed: staged copies, and (object stores) unfinished multipart uploads. */
export interface StagingSweep {
  staged: number;
  uploads: number;
}

/** One staged copy or unfinished multipart upload; its name carries the instance that writes it. */
export interface StagingEntry {
  /** The file name or object key, as the datastore lists it. */
  readonly name: string;
  /** The writing instance's id; undefined for staging named before names carried one. */
  readonly writer: string | undefined;
  readonly modifiedMs: number;
  /** Set for an unfinished multipart upload. */
  readonly uploadId?: string;
}

/**
 * Bytes fully received and hashed, not yet visible under their sha256. The staging contract, which an
 * object store honours as well as a filesystem: staged bytes are invisible to `read` and `list`; `publish`
 * may be slow (an object store copies) and succeeds when the blob already exists; the staged copy is kept
 * until `commit` or `discard`, so a blob deleted after `publish` can be published again; staged bytes are
 * named by the writing instance, so those neither committed nor discarded (a crash) are removed once that
 * instance is dead (staging.ts).
 */
export interface StagedBlob {
  readonly datastoreId: string;
  readonly sha256: string;
  readonly size: number;
  /** Makes the bytes readable under sha256, keeping the staged copy; again after a delete, it makes them readable again. */
  publish(): Promise<void>;
  /** Publishes (unless done already) and drops the staged copy: from now on the blob is only the datastore's. */
  commit(): Promise<void>;
  /** Drops the staged copy; what was published stays (committed blobs go only through Datastore.delete). */
  discard(): Promise<void>;
}

/** What a datastore does to publish or drop its staged bytes; stagedBlob keeps the rules around them. */
export interface StagingSteps {
  /** Makes the bytes readable under their sha256 (a no-op if that blob exists), keeping the staged copy; may throw. */
  publish(): Promise<void>;
  /** Drops the staged copy (after a publish the blob is safe whatever this does). */
  discard(): Promise<void>;
}

/** A StagedBlob with the one state machine: publish and commit only what is staged, discard only once. */
export function stagedBlob(datastoreId: string, sha256: string, size: number, steps: StagingSteps): StagedBlob {
  let state: 'staged' | 'committed' | 'discarded' = 'staged';
  let published = false;
  const publish = async () => {
    if (state !== 'staged') throw new Error(`cannot publish a ${state} blob`);
    await steps.publish();
    published = true;
  };
  return {
    datastoreId,
    sha256,
    size,
    publish,
    commit: async () => {
      if (!published) await publish();
      if (state !== 'staged') throw new Error(`cannot commit a ${state} blob`);
      state = 'committed';
      // The blob is safe now: a staged copy left by a failure here is swept later.
      await steps.discard().catch(() => undefined);
    },
    discard: async () => {
      if (state !== 'staged') return;
      state = 'discarded';
      await steps.discard();
    },
  };
}

/** A staging file its caller fills itself: a remote fetch's spool, which its clients read while it grows. */
export interface StagingFile {
  /** Open for reading and writing; the caller closes it once done with it. */
  readonly handle: FileHandle;
  /** All `size` bytes are written and hash to `sha256`: the staged blob, durable unless that blob exists already. */
  staged(sha256: string, size: number): Promise<StagedBlob>;
  /** Removes the file (an open handle still reads it); after a failure, instead of `staged`. */
  discard(): Promise<void>;
}

export interface Datastore {
  /** The name rows use to point at this datastore; never changes once rows use it. */
  readonly id: string;
  /** Streams `body` to a staging area while hashing it; past maxBytes it throws and leaves nothing behind. */
  writeStream(body: Readable, limits: WriteLimits): Promise<StagedBlob>;
  /** Where staging is a local file: one to fill directly, so that a remote fetch writes its bytes once. */
  createStagingFile?(): Promise<StagingFile>;
  /** The blob's bytes, or one inclusive range of them. Rejects when the blob does not exist. */
  read(sha256: string, range?: ByteRange): Promise<Readable>;
  /** Blobs up to this size may be read whole with readWhole (answered in one write); absent or 0: none. */
  readonly wholeReadLimit?: number;
  /** The blob's `size` bytes in one buffer, perhaps from memory. Rejects when the blob does not exist. */
  readWhole?(sha256: string, size: number): Promise<Buffer>;
  has(sha256: string): Promise<boolean>;
  delete(sha256: string): Promise<void>;
  /** Every committed blob's sha256, for sweeping the unreferenced ones. */
  list(): AsyncIterable<string>;
  /** A URL the client may be redirected to instead (e.g. a presigned S3 URL); undefined to serve the bytes. */
  redirectUrl?(sha256: string, headers?: RedirectHeaders): Promise<string | undefined>;
  /** Set where the reverse proxy reads this datastore's files itself (filesystem datastores). */
  readonly proxyOffload?: ProxyOffload;
  /** Every staged copy and unfinished upload, for finding a crash's leftovers (see staging.ts). */
  listStaging(): AsyncIterable<StagingEntry>;
  /** Removes one of them; already gone is fine. */
  removeStaging(entry: StagingEntry): Promise<void>;
  /** Releases connections; the datastore is not used afterwards. */
  close?(): void;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Only lowercase hex digests ever become storage keys, so no caller input can name another file. */
export function isSha256Hex(value: string): boolean {
  return SHA256_HEX.test(value);
}
