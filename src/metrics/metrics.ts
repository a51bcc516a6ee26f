// Every Prometheus metric of the service, in one registry of its own (never prom-client's global one).
// Labels are bounded: endpoint families, configured homeserver and datastore names, status codes,
// outcomes; never a media ID, user ID, remote server name or path.
import type { Knex } from 'knex';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { FinishedRequest, HttpObserver } from '../http/request-log.js';
import type { CacheLookups } from '../lru-cache.js';

const PREFIX = 'media_repo_';
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export type CacheName = 'local_media_records' | 'thumbnail_records' | 'remote_media' | 'keys' | 'tokens';

export class Metrics implements HttpObserver {
  readonly registry = new Registry();
  private readonly requests = this.counter('http_requests_total', 'HTTP requests by endpoint family, homeserver and status', ['family', 'homeserver', 'status']);
  private readonly latency = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`, help: 'HTTP request latency, until the response is complete',
    labelNames: ['family', 'homeserver'], buckets: LATENCY_BUCKETS, registers: [this.registry],
  });
  private readonly bytesIn = this.counter('http_received_bytes_total', 'Bytes received in requests', ['family', 'homeserver']);
  private readonly bytesOut = this.counter('http_sent_bytes_total', 'Bytes sent in responses', ['family', 'homeserver']);
  private readonly aborted = this.counter('http_aborted_total', 'Requests whose client went away before the response was complete', ['family', 'homeserver']);
  private readonly uploads = this.counter('uploads_total', 'Uploads stored', ['homeserver']);
  private readonly uploadBytes = this.counter('upload_bytes_total', 'Bytes of uploads stored', ['homeserver']);
  private readonly cache = this.counter('cache_lookups_total', 'In-memory cache lookups by cache and result', ['cache', 'result']);
  private readonly remoteFetches = this.counter('remote_fetches_total', 'Remote media fetches started by this instance, by outcome (ok or HTTP status)', ['outcome']);
  private readonly joins = this.counter('remote_fetch_joins_total', 'Requests that joined a remote fetch already running (single flight)', []);
  private readonly keyFetchOutcomes = this.counter('key_fetches_total', 'Server key fetches by source (direct, notary) and outcome', ['source', 'outcome']);
  private readonly quotaRefusals = this.counter('quota_refusals_total', 'Uploads refused by a quota', ['homeserver', 'limit', 'scope']);
  private readonly rateLimited = this.counter('rate_limit_refusals_total', 'Requests refused by a rate limit (429)', ['homeserver', 'family', 'scope']);
  private readonly unavailable = this.counter('unavailable_total', 'Requests answered 503 because a dependency was unreachable', ['dependency']);
  readonly datastoreOps = this.counter('datastore_operations_total', 'Datastore operations by datastore, operation and outcome', ['datastore', 'operation', 'outcome']);
  readonly datastoreLatency = new Histogram({
    name: `${PREFIX}datastore_operation_duration_seconds`, help: 'Datastore operation latency (reads: until the stream opens)',
    labelNames: ['datastore', 'operation'], buckets: LATENCY_BUCKETS, registers: [this.registry],
  });

  constructor(options: { knex?: Knex } = {}) {
    // Series with a known, small label set start at 0, so rates and alerts have data before the first event.
    for (const source of ['direct', 'notary']) for (const outcome of ['ok', 'error']) this.keyFetchOutcomes.inc({ source, outcome }, 0);
    for (const dependency of ['database', 'datastore']) this.unavailable.inc({ dependency }, 0);
    this.remoteFetches.inc({ outcome: 'ok' }, 0);
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX, eventLoopMonitoringPrecision: 20 });
    const client = options.knex?.client as { pool?: TarnPool } | undefined;
    new Gauge({
      name: `${PREFIX}db_pool_connections`, help: 'Database pool connections by state (used, free, pending acquires)',
      labelNames: ['state'], registers: [this.registry],
      collect() {
        const p = client?.pool;
        if (!p) return;
        this.set({ state: 'used' }, p.numUsed());
        this.set({ state: 'free' }, p.numFree());
        this.set({ state: 'pending' }, p.numPendingAcquires());
      },
    });
  }

  // Every request updates several series: their children are looked up once per label set, not hashed per request.
  private readonly requestSeries = new Map<string, RequestSeries>();

  requestFinished(r: FinishedRequest): void {
    const key = `${r.family}|${r.homeserver}|${r.status}`;
    let series = this.requestSeries.get(key);
    if (!series) {
      const labels = { family: r.family, homeserver: r.homeserver };
      series = {
        requests: this.requests.labels({ ...labels, status: String(r.status) }),
        latency: this.latency.labels(labels),
        bytesIn: this.bytesIn.labels(labels),
        bytesOut: this.bytesOut.labels(labels),
        aborted: this.aborted.labels(labels),
      };
      this.requestSeries.set(key, series);
    }
    series.requests.inc();
    series.latency.observe(r.durationSeconds);
    if (r.bytesIn > 0) series.bytesIn.inc(r.bytesIn);
    if (r.bytesOut > 0) series.bytesOut.inc(r.bytesOut);
    if (r.aborted) series.aborted.inc();
  }

  uploadStored = (homeserver: string, bytes: number): void => {
    this.uploads.inc({ homeserver });
    this.uploadBytes.inc({ homeserver }, bytes);
  };

  cacheLookups(cache: CacheName): CacheLookups {
    const hit = this.cache.labels(cache, 'hit');
    const miss = this.cache.labels(cache, 'miss');
    return (found) => (found ? hit : miss).inc();
  }

  remoteFetchFinished = (outcome: string): void => this.remoteFetches.inc({ outcome });
  remoteFetchJoined = (): void => this.joins.inc();
  /** `fetch`, counting each call's outcome. */
  keyFetches<A extends unknown[], R>(source: 'direct' | 'notary', fetch: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args) => {
      try {
        const result = await fetch(...args);
        this.keyFetchOutcomes.inc({ source, outcome: 'ok' });
        return result;
      } catch (error) {
        this.keyFetchOutcomes.inc({ source, outcome: 'error' });
        throw error;
      }
    };
  }
  quotaRefused = (homeserver: string, limit: string, scope: string): void => this.quotaRefusals.inc({ homeserver, limit, scope });
  rateLimitRefused = (homeserver: string, family: string, scope: string): void => this.rateLimited.inc({ homeserver, family, scope });
  dependencyUnavailable = (dependency: string): void => this.unavailable.inc({ dependency });

  private counter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    return new Counter({ name: `${PREFIX}${name}`, help, labelNames, registers: [this.registry] });
  }
}

interface RequestSeries {
  requests: { inc(): void };
  latency: { observe(value: number): void };
  bytesIn: { inc(value: number): void };
  bytesOut: { inc(value: number): void };
  aborted: { inc(): void };
}

/** The part of knex's (tarn) pool read for the gauge. */
interface TarnPool {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
}
