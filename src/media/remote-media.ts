// Remote media for the client API: served from the cache when it is there, else fetched once from its
// origin server and streamed to every waiting client while it is written to storage (see remote-flight).
//
// One upstream request per media (or thumbnail size), however many clients ask at once: in process, the
// first request starts a Flight that later ones join; across instances, a lock row (remote-fetch-lock).
// No connection is held while the remote server is waited for.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { HomeserverConfig } from '../config/config.js';
import type { InstanceLiveness } from '../db/instances.js';
import type { FederationClient } from '../federation/client.js';
import type { Logger } from '../log.js';
import { notFound } from '../matrix/errors.js';
import type { ThumbnailSpec } from '../matrix/thumbnail-spec.js';
import type { Datastores } from '../storage/datastores.js';
import type { BlobReferences } from './blob-references.js';
import type { MediaStore } from './media-store.js';
import { waitAtMost } from './remote-errors.js';
import { RemoteFailures } from './remote-failures.js';
import { Flight, type FetchTarget, type FlightDeps, type RemoteSettings } from './remote-flight.js';
import { RemoteFetchStore } from './remote-store.js';
import { servableBlob, type ServableMedia } from './servable.js';

export interface RemoteOpenOptions {
  thumbnail?: ThumbnailSpec;
  /** How long this client waits for the bytes to start (timeout_ms, already capped). */
  timeoutMs: number;
}

export interface RemoteMediaOptions {
  knex: Knex;
  media: MediaStore;
  blobs: BlobReferences;
  datastores: Datastores;
  federation: FederationClient;
  log: Logger;
  settings: RemoteSettings & {
    /** media.maxTimeoutMs: no client waits longer, so neither does a fetch waiting on another instance. */
    maxTimeoutMs: number;
  };
  /** Where spool files are created (and at once unlinked). */
  spoolDirectory: string;
  hooks?: RemoteMediaHooks;
  /** Told of every request for remote media: which hosted homeserver asked (access times, fetchers). */
  accessed?: (tenant: string, serverName: string, mediaId: string) => void;
  /** This instance and which are alive: fetch locks name their instance, and a dead one's are taken over. */
  instances?: InstanceLiveness;
  lockHeartbeatMs?: number;
  lockStaleMs?: number;
  now?: () => number;
}

/** Limits and metrics, from the composition root. */
export interface RemoteMediaHooks {
  /** Throws (429) to refuse starting a new fetch from `serverName` on behalf of `tenant`. */
  admitFetch?(tenant: string, serverName: string): void;
  cacheLookup?(hit: boolean): void;
  /** A request joined a fetch already running in this instance. */
  joined?(): void;
  /** A fetch this instance started ended: "ok", or the HTTP status it failed with. */
  fetchFinished?(outcome: string): void;
}

/** A fetch lock not heartbeated this long is lost, even if its instance lives. */
export const FETCH_LOCK_STALE_MS = 30_000;

export class RemoteMedia {
  /** Flights a new request may join: a failed one leaves once its failure is recorded, so no request in between asks the origin again. */
  private readonly flights = new Map<string, Flight>();
  /** Every flight still running (recording its outcome, releasing its lock), for settled() and close(). */
  private readonly running = new Set<Flight>();
  private readonly warnedNoKey = new Set<string>();
  private readonly deps: FlightDeps;

  constructor(private readonly options: RemoteMediaOptions) {
    const now = options.now ?? Date.now;
    const store = new RemoteFetchStore(options.knex);
    this.deps = {
      store,
      failures: new RemoteFailures(store, options.settings.failureCacheMs, now),
      federation: options.federation,
      media: options.media,
      blobs: options.blobs,
      datastores: options.datastores,
      log: options.log,
      settings: options.settings,
      lock: {
        heartbeatMs: options.lockHeartbeatMs ?? 5000, staleMs: options.lockStaleMs ?? FETCH_LOCK_STALE_MS, maxWaitMs: options.settings.maxTimeoutMs, now,
        liveInstances: options.instances && (() => options.instances!.live()),
      },
      instanceId: options.instances?.id ?? randomUUID(),
      spoolDirectory: options.spoolDirectory,
      cached: (target) => this.cached(target),
      warnNoSigningKey: (tenant) => this.warnNoSigningKey(tenant),
    };
  }

  /** `tenant`: the hosted homeserver whose user asks; its key signs the request to the origin. */
  async open(tenant: Pick<HomeserverConfig, 'name'>, serverName: string, mediaId: string, options: RemoteOpenOptions): Promise<ServableMedia> {
    const target: FetchTarget = { tenant: tenant.name, serverName, mediaId, thumbnail: options.thumbnail, key: fetchKey(serverName, mediaId, options.thumbnail) };
    // The cache is looked in while the quarantine is checked (one round trip of waiting, not two); nothing is served before both.
    const lookup = this.flights.has(target.key) ? undefined : this.cached(target);
    lookup?.catch(() => undefined); // awaited below unless the quarantine check throws first
    // Quarantined media is never served, nor fetched again from its origin.
    if (await this.options.media.isQuarantined(serverName, mediaId)) throw notFound('Media not found');
    this.options.accessed?.(tenant.name, serverName, mediaId);
    // A fetch in progress here answers without a database round trip; it also serves from the cache if it finds one.
    const hooks = this.options.hooks;
    const running = this.flights.get(target.key);
    if (running) {
      hooks?.joined?.();
      return waitAtMost(running.ready, options.timeoutMs);
    }
    const cached = await (lookup ?? this.cached(target));
    hooks?.cacheLookup?.(cached !== undefined);
    if (cached) return cached;
    let flight = this.flights.get(target.key);
    if (flight) hooks?.joined?.();
    else {
      hooks?.admitFetch?.(tenant.name, serverName);
      const started = new Flight(this.deps, target, options.timeoutMs);
      this.flights.set(target.key, started);
      this.running.add(started);
      const leave = () => {
        if (this.flights.get(target.key) === started) this.flights.delete(target.key);
      };
      started.ready.catch(() => started.recorded.then(leave));
      void started.run().finally(() => {
        leave();
        this.running.delete(started);
      });
      started.ready.then(() => hooks?.fetchFinished?.('ok'), (error: unknown) => hooks?.fetchFinished?.(String((error as { status?: number }).status ?? 'error')));
      flight = started;
    }
    return waitAtMost(flight.ready, options.timeoutMs);
  }

  /** Resolves once every fetch in progress is recorded (or has failed). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.running].map((f) => f.done));
  }

  /** Aborts fetches in progress (clients streaming them see their connection cut) and waits for them. */
  async close(): Promise<void> {
    for (const flight of this.running) flight.abort();
    await this.settled();
  }

  /** The cached media or thumbnail, served from the datastore holding it. */
  private async cached(target: FetchTarget): Promise<ServableMedia | undefined> {
    const { datastores } = this.options;
    if (!target.thumbnail) {
      const media = await this.options.media.get(target.serverName, target.mediaId);
      if (!media || !media.isRemote || media.sha256 === null || media.datastoreId === null || media.size === null) return undefined;
      return servableBlob({ ...media, sha256: media.sha256, size: media.size, storedTs: media.storedTs ?? undefined }, datastores.get(media.datastoreId));
    }
    const thumbnail = await this.deps.store.getThumbnail({ serverName: target.serverName, mediaId: target.mediaId, ...target.thumbnail });
    if (!thumbnail) return undefined;
    return servableBlob({ ...thumbnail, storedTs: thumbnail.createdTs }, datastores.get(thumbnail.datastoreId));
  }

  private warnNoSigningKey(tenant: string): void {
    if (this.warnedNoKey.has(tenant)) return;
    this.warnedNoKey.add(tenant);
    this.options.log.warn(
      { homeserver: tenant },
      'NO SIGNING KEY for this homeserver: remote media is fetched over the deprecated unauthenticated /_matrix/media/v3 endpoints only, which servers that froze unauthenticated media refuse; set signingKeyPath',
    );
  }
}

function fetchKey(serverName: string, mediaId: string, thumbnail: ThumbnailSpec | undefined): string {
  if (!thumbnail) return `download ${serverName} ${mediaId}`;
  return `thumbnail ${serverName} ${mediaId} ${thumbnail.width}x${thumbnail.height} ${thumbnail.method}${thumbnail.animated ? ' animated' : ''}`;
}
