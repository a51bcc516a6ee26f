// Remote media for the client API: served from the cache when it is there, else fetched once from its
// origin server and streamed to every waiting client while it is written to storage.
//
// One upstream request per media (or thumbnail size), however many clients ask at once: in process, the
// first request starts a Flight that later ones join; across instances, the Flight first takes a lock row
// in PostgreSQL (remote_fetches, heartbeated), and an instance that finds it taken polls for the cached
// result instead. No connection is held while the remote server is waited for.
//
// The tee: the upstream body goes into a Spool (a growing temp file, already unlinked) at disk speed; the
// datastore and each client read it at their own pace. A slow client therefore never stalls the upstream
// and costs no memory. The datastore write is what counts: only a complete download of at most
// federation.remoteMaxBytes is committed and recorded; a truncated, stalled or oversized one leaves no row
// and no blob, and clients already streaming it see their connection cut.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import type { Knex } from 'knex';
import type { Config, HomeserverConfig } from '../config/config.js';
import type { AppContext } from '../context.js';
import { NoSigningKeyError, RemoteHttpError, type FederationClient } from '../federation/client.js';
import { UpstreamError } from '../federation/http.js';
import { fetchRemoteMedia, fileNameFromContentDisposition, type RemoteMediaBody } from '../federation/media.js';
import type { Logger } from '../log.js';
import { MatrixError } from '../matrix/errors.js';
import type { ByteRange, Datastore } from '../storage/datastore.js';
import { DEFAULT_CONTENT_TYPE, type OpenedMedia } from './download.js';
import type { MediaStore, ThumbnailKey } from './media-store.js';
import { RemoteFetchStore, type CachedFailure } from './remote-store.js';
import { Spool } from './remote-spool.js';

/** Remote media as the client routes serve it; size and sha256 are unknown while it is still streaming in. */
export type OpenedRemoteMedia = Omit<OpenedMedia, 'size' | 'sha256'> & {
  /** Undefined while streaming from the origin: no Content-Length, and no Range. */
  size: number | undefined;
  sha256: string | undefined;
};

export interface RemoteThumbnailRequest {
  width: number;
  height: number;
  method?: 'crop' | 'scale';
  animated?: boolean;
}

export interface RemoteOpenOptions {
  thumbnail?: RemoteThumbnailRequest;
  /** How long this client waits for the bytes to start (timeout_ms, already capped). */
  timeoutMs: number;
}

export interface RemoteMediaOptions {
  knex: Knex;
  media: MediaStore;
  storage: Datastore;
  federation: FederationClient;
  log: Logger;
  settings: Pick<Config['federation'], 'remoteMaxBytes' | 'requestTimeoutMs' | 'failureCacheMs'> & {
    /** media.maxTimeoutMs: no client waits longer, so neither does a fetch waiting on another instance. */
    maxTimeoutMs: number;
  };
  /** Where spool files are created (and at once unlinked). */
  spoolDirectory: string;
  lockHeartbeatMs?: number;
  lockStaleMs?: number;
  now?: () => number;
}

const MAX_DESTINATION_BACKOFF_MS = 3600_000;
const FIRST_POLL_MS = 50;
const MAX_POLL_MS = 1000;

type Variant = { kind: 'download' } | ({ kind: 'thumbnail' } & Omit<ThumbnailKey, 'serverName' | 'mediaId'>);

interface FetchTarget {
  tenant: string;
  serverName: string;
  mediaId: string;
  variant: Variant;
  key: string;
}

export class RemoteMedia {
  private readonly flights = new Map<string, Flight>();
  private readonly backoff = new Map<string, { failures: number; until: number }>();
  private readonly warnedNoKey = new Set<string>();
  readonly store: RemoteFetchStore;
  readonly instanceId = randomUUID();
  readonly now: () => number;
  readonly heartbeatMs: number;
  readonly staleMs: number;

  constructor(readonly options: RemoteMediaOptions) {
    this.store = new RemoteFetchStore(options.knex);
    this.now = options.now ?? Date.now;
    this.heartbeatMs = options.lockHeartbeatMs ?? 5000;
    this.staleMs = options.lockStaleMs ?? 30_000;
  }

  /** `tenant`: the hosted homeserver whose user asks; its key signs the request to the origin. */
  async open(tenant: Pick<HomeserverConfig, 'name'>, serverName: string, mediaId: string, options: RemoteOpenOptions): Promise<OpenedRemoteMedia> {
    const variant = variantOf(options.thumbnail);
    const target: FetchTarget = { tenant: tenant.name, serverName, mediaId, variant, key: fetchKey(serverName, mediaId, variant) };
    // A fetch in progress here answers without a database round trip; it also serves from the cache if it finds one.
    const running = this.flights.get(target.key);
    if (running) return waitAtMost(running.ready, options.timeoutMs);
    const cached = await this.cached(target);
    if (cached) return cached;
    let flight = this.flights.get(target.key);
    if (!flight) {
      const started = new Flight(this, target, options.timeoutMs);
      this.flights.set(target.key, started);
      void started.run().finally(() => this.flights.delete(target.key));
      flight = started;
    }
    return waitAtMost(flight.ready, options.timeoutMs);
  }

  /** Resolves once every fetch in progress is recorded (or has failed). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.flights.values()].map((f) => f.done));
  }

  /** Aborts fetches in progress (clients streaming them see their connection cut) and waits for them. */
  async close(): Promise<void> {
    for (const flight of this.flights.values()) flight.abort();
    await this.settled();
  }

  /** The cached media or thumbnail, served from storage. */
  async cached(target: FetchTarget): Promise<OpenedRemoteMedia | undefined> {
    const storage = this.options.storage;
    if (target.variant.kind === 'download') {
      const media = await this.options.media.get(target.serverName, target.mediaId);
      if (!media || !media.isRemote || media.sha256 === null || media.size === null) return undefined;
      const sha256 = media.sha256;
      return {
        contentType: media.contentType ?? DEFAULT_CONTENT_TYPE,
        uploadName: media.uploadName,
        size: media.size,
        sha256,
        storedTs: media.storedTs ?? undefined,
        open: (range) => storage.read(sha256, range),
      };
    }
    const thumbnail = await this.store.getThumbnail(thumbnailKey(target));
    if (!thumbnail) return undefined;
    return {
      contentType: thumbnail.contentType,
      uploadName: null,
      size: thumbnail.size,
      sha256: thumbnail.sha256,
      storedTs: thumbnail.createdTs,
      open: (range) => storage.read(thumbnail.sha256, range),
    };
  }

  assertNotBackingOff(serverName: string): void {
    const state = this.backoff.get(serverName);
    if (state && state.until > this.now()) {
      const seconds = Math.ceil((state.until - this.now()) / 1000);
      throw new NotAttempted({ status: 502, errcode: 'M_UNKNOWN', error: `${serverName} could not be reached recently; not retrying for ${seconds} s` });
    }
  }

  noteOutcome(serverName: string, error: unknown): void {
    if (error === undefined) {
      this.backoff.delete(serverName);
      return;
    }
    if (!(error instanceof UpstreamError) || (error.kind !== 'unreachable' && error.kind !== 'timeout')) return;
    const failures = (this.backoff.get(serverName)?.failures ?? 0) + 1;
    const delay = Math.min(MAX_DESTINATION_BACKOFF_MS, this.options.settings.failureCacheMs * 2 ** (failures - 1));
    this.backoff.set(serverName, { failures, until: this.now() + delay });
  }

  warnNoSigningKey(tenant: string): void {
    if (this.warnedNoKey.has(tenant)) return;
    this.warnedNoKey.add(tenant);
    this.options.log.warn(
      { homeserver: tenant },
      'NO SIGNING KEY for this homeserver: remote media is fetched over the deprecated unauthenticated /_matrix/media/v3 endpoints only, which servers that froze unauthenticated media refuse; set signingKeyPath',
    );
  }
}

/** One upstream fetch and everything waiting on it. */
class Flight {
  readonly ready: Promise<OpenedRemoteMedia>;
  readonly done: Promise<void>;
  private resolveReady!: (media: OpenedRemoteMedia) => void;
  private rejectReady!: (error: unknown) => void;
  private resolveDone!: () => void;
  private spool: Spool | undefined;
  private releaseSpool: (() => void) | undefined;
  private stored: { sha256: string; size: number } | undefined;
  private failure: Error | undefined;
  private upstream: Readable | undefined;
  private aborted = false;
  private readonly owner: string;

  constructor(
    private readonly remote: RemoteMedia,
    private readonly target: FetchTarget,
    private readonly timeoutMs: number,
  ) {
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => undefined); // joiners that timed out leave no unhandled rejection behind
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.owner = `${remote.instanceId}/${randomUUID()}`;
  }

  abort(): void {
    this.aborted = true;
    this.upstream?.destroy(new UpstreamError('unreachable', 'the service is shutting down'));
  }

  /** Never rejects: the outcome goes to `ready` and to the caches. */
  async run(): Promise<void> {
    const { store } = this.remote;
    let locked = false;
    let heartbeat: NodeJS.Timeout | undefined;
    try {
      const failure = await store.getFailure(this.target.key, this.remote.now());
      if (failure) throw new NotAttempted(failure);
      this.remote.assertNotBackingOff(this.target.serverName);
      const cachedMeanwhile = await this.lockOrWait();
      if (cachedMeanwhile) {
        this.resolveReady(cachedMeanwhile);
        return;
      }
      locked = true;
      heartbeat = setInterval(() => {
        void store.heartbeat(this.target.key, this.owner, this.remote.now()).catch(() => undefined);
      }, this.remote.heartbeatMs);
      // Another instance may have finished between our cache check and taking the lock.
      const cached = await this.remote.cached(this.target);
      if (cached) {
        this.resolveReady(cached);
        return;
      }
      await this.fetch();
      await store.clearFailure(this.target.key);
      this.remote.noteOutcome(this.target.serverName, undefined);
    } catch (error) {
      await this.fail(error);
    } finally {
      clearInterval(heartbeat);
      if (locked) await store.unlock(this.target.key, this.owner).catch(() => undefined);
      this.releaseSpool?.();
      this.resolveDone();
    }
  }

  /** Takes the lock row; while another instance holds it, polls for its outcome. Returns that outcome if cached. */
  private async lockOrWait(): Promise<OpenedRemoteMedia | undefined> {
    const { store } = this.remote;
    const deadline = this.remote.now() + this.remote.options.settings.maxTimeoutMs;
    for (let delay = FIRST_POLL_MS; ; delay = Math.min(delay * 2, MAX_POLL_MS)) {
      const now = this.remote.now();
      if (await store.tryLock(this.target.key, this.owner, now, now - this.remote.staleMs)) return undefined;
      await sleep(delay);
      const cached = await this.remote.cached(this.target);
      if (cached) return cached;
      const failure = await store.getFailure(this.target.key, this.remote.now());
      if (failure) throw new NotAttempted(failure);
      if (this.aborted) throw new UpstreamError('unreachable', 'the service is shutting down');
      if (this.remote.now() >= deadline) throw notYetUploaded();
    }
  }

  private async fetch(): Promise<void> {
    const { options } = this.remote;
    const { settings } = options;
    const { tenant, serverName, mediaId, variant } = this.target;
    const remote = await fetchRemoteMedia(options.federation, {
      origin: tenant,
      serverName,
      mediaId,
      thumbnail: variant.kind === 'thumbnail' ? { width: variant.width, height: variant.height, method: variant.method, animated: variant.animated || undefined } : undefined,
      timeoutMs: this.timeoutMs,
      headersTimeoutMs: Math.max(settings.requestTimeoutMs, this.timeoutMs),
      maxBytes: settings.remoteMaxBytes,
      idleMs: settings.requestTimeoutMs,
      onNoSigningKey: (origin) => this.remote.warnNoSigningKey(origin),
    });
    this.upstream = remote.body;
    if (this.aborted) remote.body.destroy();
    if (remote.declaredLength !== undefined && remote.declaredLength > settings.remoteMaxBytes) {
      remote.body.destroy();
      throw new UpstreamError('too-large', `the media is ${remote.declaredLength} bytes, more than federation.remoteMaxBytes`);
    }
    const spool = await Spool.create(options.spoolDirectory);
    this.spool = spool;
    this.releaseSpool = spool.hold();
    const contentType = remote.contentType?.trim() || DEFAULT_CONTENT_TYPE;
    const uploadName = variant.kind === 'download' ? fileNameFromContentDisposition(remote.contentDisposition) : null;
    const staging = options.storage.writeStream(spool.reader(), {
      maxBytes: settings.remoteMaxBytes,
      tooLarge: () => new UpstreamError('too-large', 'the media is larger than federation.remoteMaxBytes'),
    });
    staging.catch(() => undefined); // awaited below; a failed pump must not leave it unhandled meanwhile
    this.resolveReady({
      contentType,
      uploadName,
      size: undefined,
      sha256: undefined,
      open: async (range?: ByteRange) => this.openBytes(range),
    });

    await this.pump(remote, spool);
    const blob = await staging;
    if (variant.kind === 'download') {
      const inserted = await options.media.insertMedia({ serverName, mediaId, isRemote: true, userId: null, contentType, uploadName }, blob);
      const row = inserted ? undefined : await options.media.get(serverName, mediaId);
      this.stored = row?.sha256 ? { sha256: row.sha256, size: row.size! } : { sha256: blob.sha256, size: blob.size };
    } else {
      // Through attachBlob, so a concurrent discard of the same bytes cannot delete them under the row.
      const key = thumbnailKey(this.target);
      const inserted = await options.media.attachBlob(blob, (trx) => this.remote.store.insertThumbnail(trx, key, contentType, blob));
      const row = inserted ? undefined : await this.remote.store.getThumbnail(key);
      this.stored = row ? { sha256: row.sha256, size: row.size } : { sha256: blob.sha256, size: blob.size };
    }
  }

  /** Upstream into the spool at disk speed, at most remoteMaxBytes. */
  private async pump(remote: RemoteMediaBody, spool: Spool): Promise<void> {
    const max = this.remote.options.settings.remoteMaxBytes;
    let total = 0;
    for await (const chunk of remote.body) {
      total += (chunk as Buffer).length;
      if (total > max) {
        remote.body.destroy();
        throw new UpstreamError('too-large', 'the media is larger than federation.remoteMaxBytes');
      }
      await spool.write(chunk as Buffer);
    }
    spool.finish();
  }

  /** A client's stream: from the spool while it is open, from storage once the fetch has been recorded. */
  private async openBytes(range?: ByteRange): Promise<Readable> {
    if (this.spool?.open) return this.spool.reader(range);
    if (this.stored) return this.remote.options.storage.read(this.stored.sha256, range);
    throw toClientError(this.failure ?? new UpstreamError('bad-response', 'the remote fetch did not complete'));
  }

  private async fail(error: unknown): Promise<void> {
    const { options, store } = this.remote;
    this.failure = error instanceof Error ? error : new Error(String(error));
    this.spool?.fail(this.failure);
    const clientError = toClientError(error);
    this.rejectReady(clientError);
    // Errors raised without asking the remote (cached failure, back-off) must not extend themselves.
    if (error instanceof NotAttempted || error instanceof NoSigningKeyError) return;
    const { serverName, mediaId } = this.target;
    if (clientError.status >= 500 && clientError.errcode !== 'M_NOT_YET_UPLOADED') {
      options.log.warn({ serverName, mediaId, err: this.failure.message }, 'remote media fetch failed');
    }
    this.remote.noteOutcome(serverName, error);
    // "Not yet uploaded" (the origin's, or our wait on another instance) may change any moment: not cached.
    if (options.settings.failureCacheMs > 0 && clientError.errcode !== 'M_NOT_YET_UPLOADED' && !this.aborted) {
      const failure: CachedFailure = { status: clientError.status, errcode: clientError.errcode, error: clientError.message };
      await store.putFailure(this.target.key, failure, this.remote.now() + options.settings.failureCacheMs).catch(() => undefined);
    }
  }
}

/** The Matrix error a client gets for a failed fetch. */
export function toClientError(error: unknown): MatrixError {
  if (error instanceof MatrixError) return error;
  if (error instanceof RemoteHttpError) {
    if (error.status === 404) return new MatrixError(404, 'M_NOT_FOUND', 'Media not found on its origin server');
    if (error.errcode === 'M_NOT_YET_UPLOADED') return new MatrixError(504, 'M_NOT_YET_UPLOADED', 'The remote content has not yet been uploaded');
    if (error.errcode === 'M_TOO_LARGE') return new MatrixError(502, 'M_TOO_LARGE', 'The remote content is too large');
    return new MatrixError(502, 'M_UNKNOWN', `The origin server answered ${error.status}${error.errcode ? ` ${error.errcode}` : ''}`);
  }
  if (error instanceof UpstreamError) {
    if (error.kind === 'too-large') return new MatrixError(502, 'M_TOO_LARGE', 'The remote content is too large');
    if (error.kind === 'timeout') return new MatrixError(504, 'M_UNKNOWN', 'The origin server did not answer in time');
    return new MatrixError(502, 'M_UNKNOWN', `Could not fetch the remote content: ${error.message}`);
  }
  return new MatrixError(502, 'M_UNKNOWN', 'Could not fetch the remote content');
}

/** A failure answered without contacting the remote: a cached failure, or the destination's back-off. */
class NotAttempted extends MatrixError {
  constructor(failure: CachedFailure) {
    super(failure.status, failure.errcode as MatrixError['errcode'], failure.error);
  }
}

function notYetUploaded(): MatrixError {
  return new MatrixError(504, 'M_NOT_YET_UPLOADED', 'The remote content is not available yet');
}

function waitAtMost<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(notYetUploaded()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function variantOf(thumbnail: RemoteThumbnailRequest | undefined): Variant {
  if (!thumbnail) return { kind: 'download' };
  return { kind: 'thumbnail', width: thumbnail.width, height: thumbnail.height, method: thumbnail.method ?? 'scale', animated: thumbnail.animated ?? false };
}

function fetchKey(serverName: string, mediaId: string, variant: Variant): string {
  if (variant.kind === 'download') return `download ${serverName} ${mediaId}`;
  return `thumbnail ${serverName} ${mediaId} ${variant.width}x${variant.height} ${variant.method}${variant.animated ? ' animated' : ''}`;
}

function thumbnailKey(target: FetchTarget): ThumbnailKey {
  const variant = target.variant as Extract<Variant, { kind: 'thumbnail' }>;
  return { serverName: target.serverName, mediaId: target.mediaId, width: variant.width, height: variant.height, method: variant.method, animated: variant.animated };
}

/** The context with its RemoteMedia, built from the config and the parts it needs. */
export function withRemoteMedia<T extends Omit<AppContext, 'remoteMedia'>>(ctx: T): T & Pick<AppContext, 'remoteMedia'> {
  const remoteMedia = new RemoteMedia({
    knex: ctx.db.knex,
    media: ctx.media,
    storage: ctx.storage,
    federation: ctx.federation,
    log: ctx.log,
    settings: { ...ctx.config.federation, maxTimeoutMs: ctx.config.media.maxTimeoutMs },
    spoolDirectory: join(ctx.config.dataDir, 'remote-spool'),
  });
  return { ...ctx, remoteMedia };
}
