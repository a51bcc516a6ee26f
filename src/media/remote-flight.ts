// One upstream fetch of a remote media (or thumbnail) and every client waiting on it.
//
// The tee: the upstream body goes into a Spool (a growing temp file, already unlinked) at disk speed; the
// datastore and each client read it at their own pace. A slow client therefore never stalls the upstream
// and costs no memory. The datastore write is what counts: only a complete download of at most
// remoteMaxBytes is committed and recorded; a truncated, stalled or oversized one leaves no row and no
// blob, and clients already streaming it see their connection cut.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { NoSigningKeyError, type FederationClient } from '../federation/client.js';
import { UpstreamError } from '../federation/http.js';
import { fetchRemoteMedia } from '../federation/media.js';
import type { Logger } from '../log.js';
import { fileNameFromContentDisposition } from '../matrix/content-disposition.js';
import type { ThumbnailSpec } from '../matrix/thumbnail-spec.js';
import type { ByteRange, StagedBlob } from '../storage/datastore.js';
import type { Datastores } from '../storage/datastores.js';
import type { BlobReferences } from './blob-references.js';
import type { MediaStore } from './media-store.js';
import { NotAttempted, toClientError } from './remote-errors.js';
import type { RemoteFailures } from './remote-failures.js';
import { FetchLock, type FetchLockSettings } from './remote-fetch-lock.js';
import { sniffThumbnail } from './remote-sniff.js';
import { fillSpool, Spool } from './remote-spool.js';
import type { RemoteFetchStore } from './remote-store.js';
import { DEFAULT_CONTENT_TYPE, type ServableMedia } from './servable.js';

export interface FetchTarget {
  /** The hosted homeserver whose user asks; its key signs the request to the origin. */
  tenant: string;
  serverName: string;
  mediaId: string;
  thumbnail: ThumbnailSpec | undefined;
  /** Names the fetch in the lock and failure tables. */
  key: string;
}

export interface RemoteSettings {
  remoteMaxBytes: number;
  requestTimeoutMs: number;
  failureCacheMs: number;
}

/** What every flight needs, built once by RemoteMedia. */
export interface FlightDeps {
  store: RemoteFetchStore;
  failures: RemoteFailures;
  federation: FederationClient;
  media: MediaStore;
  blobs: BlobReferences;
  datastores: Datastores;
  log: Logger;
  settings: RemoteSettings;
  lock: FetchLockSettings;
  instanceId: string;
  spoolDirectory: string;
  /** The media or thumbnail if it is cached already. */
  cached(target: FetchTarget): Promise<ServableMedia | undefined>;
  warnNoSigningKey(tenant: string): void;
}

const shuttingDown = () => new UpstreamError('unreachable', 'the service is shutting down');
const tooLarge = () => new UpstreamError('too-large', 'the media is larger than federation.remoteMaxBytes');

export class Flight {
  readonly ready: Promise<ServableMedia>;
  readonly done: Promise<void>;
  /** Resolves once a failure is where the next request looks for it (or is not to be kept). */
  readonly recorded: Promise<void>;
  private resolveRecorded!: () => void;
  private resolveReady!: (media: ServableMedia) => void;
  private rejectReady!: (error: unknown) => void;
  private resolveDone!: () => void;
  private spool: Spool | undefined;
  private releaseSpool: (() => void) | undefined;
  private stored: { datastoreId: string; sha256: string } | undefined;
  private failure: Error | undefined;
  private upstream: Readable | undefined;
  private aborted = false;

  constructor(private readonly deps: FlightDeps, private readonly target: FetchTarget, private readonly timeoutMs: number) {
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => undefined); // joiners that timed out leave no unhandled rejection behind
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.recorded = new Promise((resolve) => (this.resolveRecorded = resolve));
  }

  abort(): void {
    this.aborted = true;
    this.upstream?.destroy(shuttingDown());
  }

  /** Never rejects: the outcome goes to `ready` and to the caches. */
  async run(): Promise<void> {
    const { deps, target } = this;
    const lock = new FetchLock(deps.store, target.key, `${deps.instanceId}/${randomUUID()}`, deps.lock);
    try {
      await deps.failures.assertNotFailedRecently(target.key);
      deps.failures.assertNotBackingOff(target.serverName);
      const cachedMeanwhile = await lock.acquireOr(async () => {
        const cached = await deps.cached(target);
        if (cached) return cached;
        await deps.failures.assertNotFailedRecently(target.key);
        if (this.aborted) throw shuttingDown();
        return undefined;
      });
      // Another instance may also have finished, or failed, between our last look and taking the lock.
      const cached = cachedMeanwhile ?? (await deps.cached(target));
      if (cached) {
        this.resolveReady(cached);
        return;
      }
      await deps.failures.assertNotFailedRecently(target.key);
      await this.fetch();
      await deps.failures.succeeded(target.key, target.serverName);
    } catch (error) {
      await this.fail(error);
    } finally {
      await lock.release();
      this.releaseSpool?.();
      this.resolveDone();
    }
  }

  private async fetch(): Promise<void> {
    const { deps, target } = this;
    const { settings } = deps;
    const remote = await fetchRemoteMedia(deps.federation, {
      origin: target.tenant,
      serverName: target.serverName,
      mediaId: target.mediaId,
      thumbnail: target.thumbnail,
      timeoutMs: this.timeoutMs,
      headersTimeoutMs: Math.max(settings.requestTimeoutMs, this.timeoutMs),
      maxBytes: settings.remoteMaxBytes,
      idleMs: settings.requestTimeoutMs,
      onNoSigningKey: (origin) => deps.warnNoSigningKey(origin),
    });
    this.upstream = remote.body;
    // abort() may destroy the body before its reader is attached (the spool is being created): not an uncaught error.
    remote.body.on('error', () => undefined);
    if (this.aborted) remote.body.destroy();
    if (remote.declaredLength !== undefined && remote.declaredLength > settings.remoteMaxBytes) {
      remote.body.destroy();
      throw new UpstreamError('too-large', `the media is ${remote.declaredLength} bytes, more than federation.remoteMaxBytes`);
    }
    // Before any client byte: a thumbnail's first bytes decide its type, and nothing else may be cached or served.
    const sniffed = target.thumbnail ? await sniffThumbnail(remote.body) : undefined;
    const datastore = deps.datastores.forKind(target.thumbnail ? 'thumbnails' : 'remote_media', target.tenant);
    // Where the datastore stages in a local file, that file is the spool: the bytes reach the disk once.
    const stagingFile = await datastore.createStagingFile?.();
    const spool = stagingFile ? Spool.staging(stagingFile.handle) : await Spool.create(deps.spoolDirectory);
    this.spool = spool;
    this.releaseSpool = spool.hold();
    const contentType = sniffed?.contentType ?? (remote.contentType?.trim() || DEFAULT_CONTENT_TYPE);
    const uploadName = fileNameFromContentDisposition(remote.contentDisposition);
    let blob: StagedBlob;
    try {
      if (this.aborted) throw shuttingDown(); // answered with an error, not with a response cut before its first byte
      const staging = stagingFile ? undefined : datastore.writeStream(spool.reader(), { maxBytes: settings.remoteMaxBytes, tooLarge });
      staging?.catch(() => undefined); // awaited below; a failed fill must not leave it unhandled meanwhile
      this.resolveReady({ contentType, uploadName, size: undefined, sha256: undefined, open: async (range) => this.openBytes(range) });

      await fillSpool(spool, remote.body, settings.remoteMaxBytes, tooLarge, sniffed?.chunks);
      blob = stagingFile ? await stagingFile.staged(spool.digestHex(), spool.length) : await staging!;
    } catch (error) {
      await stagingFile?.discard();
      throw error;
    }
    const { serverName, mediaId } = target;
    if (!target.thumbnail) {
      const inserted = await deps.media.insertMedia({ serverName, mediaId, isRemote: true, userId: null, contentType, uploadName }, blob);
      const row = inserted ? undefined : await deps.media.get(serverName, mediaId);
      this.stored = row?.sha256 && row.datastoreId ? { datastoreId: row.datastoreId, sha256: row.sha256 } : blob;
    } else {
      // Through BlobReferences, so a concurrent discard of the same bytes cannot delete them under the row.
      const key = { serverName, mediaId, ...target.thumbnail };
      const inserted = await deps.blobs.attach(blob, (trx) => deps.store.insertThumbnail(trx, key, contentType, uploadName, blob));
      this.stored = (inserted ? undefined : await deps.store.getThumbnail(key)) ?? blob;
    }
  }

  /** A client's stream: from the spool while it is open, from storage once the fetch has been recorded. */
  private async openBytes(range?: ByteRange): Promise<Readable> {
    if (this.spool?.open) return this.spool.reader(range);
    if (this.stored) return this.deps.datastores.get(this.stored.datastoreId).read(this.stored.sha256, range);
    throw toClientError(this.failure ?? new UpstreamError('bad-response', 'the remote fetch did not complete'));
  }

  private async fail(error: unknown): Promise<void> {
    this.failure = error instanceof Error ? error : new Error(String(error));
    this.spool?.fail(this.failure);
    const clientError = toClientError(error);
    this.rejectReady(clientError);
    try {
      // Errors raised without asking the remote (cached failure, back-off) must not extend themselves.
      if (error instanceof NotAttempted || error instanceof NoSigningKeyError) return;
      const { serverName, mediaId } = this.target;
      if (clientError.status >= 500 && clientError.errcode !== 'M_NOT_YET_UPLOADED') {
        this.deps.log.warn({ serverName, mediaId, err: this.failure.message }, 'remote media fetch failed');
      }
      if (!this.aborted) await this.deps.failures.failed(this.target.key, serverName, error, clientError);
    } finally {
      this.resolveRecorded();
    }
  }
}
