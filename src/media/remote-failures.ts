// Remote fetches that failed are not retried at once: the failure is cached per media (in PostgreSQL, so
// every instance honours it), and an origin that cannot be reached is backed off (per instance, doubling).
import { UpstreamError } from '../federation/http.js';
import type { MatrixError } from '../matrix/errors.js';
import { NotAttempted } from './remote-errors.js';
import type { RemoteFetchStore } from './remote-store.js';

const MAX_DESTINATION_BACKOFF_MS = 3600_000;

export class RemoteFailures {
  private readonly backoff = new Map<string, { failures: number; until: number }>();
  private lastTidy = 0;

  constructor(private readonly store: RemoteFetchStore, private readonly failureCacheMs: number, private readonly now: () => number) {}

  /** Throws NotAttempted when this fetch failed recently. */
  async assertNotFailedRecently(fetchKey: string): Promise<void> {
    const failure = await this.store.getFailure(fetchKey, this.now());
    if (failure) throw new NotAttempted(failure);
  }

  /** Throws NotAttempted while the origin is backed off. */
  assertNotBackingOff(serverName: string): void {
    const state = this.backoff.get(serverName);
    if (state && state.until > this.now()) {
      const seconds = Math.ceil((state.until - this.now()) / 1000);
      throw new NotAttempted({ status: 502, errcode: 'M_UNKNOWN', error: `${serverName} could not be reached recently; not retrying for ${seconds} s` });
    }
  }

  async succeeded(fetchKey: string, serverName: string): Promise<void> {
    await this.store.clearFailure(fetchKey);
    this.backoff.delete(serverName);
  }

  /** Backs the origin off when it could not be reached, and remembers the client's error unless it may change any moment. */
  async failed(fetchKey: string, serverName: string, error: unknown, clientError: MatrixError): Promise<void> {
    if (error instanceof UpstreamError && (error.kind === 'unreachable' || error.kind === 'timeout')) {
      const failures = (this.backoff.get(serverName)?.failures ?? 0) + 1;
      const delay = Math.min(MAX_DESTINATION_BACKOFF_MS, this.failureCacheMs * 2 ** (failures - 1));
      this.backoff.set(serverName, { failures, until: this.now() + delay });
    }
    try {
      // "Not yet uploaded" (the origin's, or our wait on another instance) may change any moment: not cached.
      if (this.failureCacheMs <= 0 || clientError.errcode === 'M_NOT_YET_UPLOADED') return;
      const failure = { status: clientError.status, errcode: clientError.errcode, error: clientError.message };
      await this.store.putFailure(fetchKey, failure, this.now() + this.failureCacheMs).catch(() => undefined);
    } finally {
      // After the write: the client already has its answer, and its next request must find this failure.
      this.tidy();
    }
  }

  /**
   * At most once per failureCacheMs (a second at least): expired failure rows go, and so do back-offs an hour past their end
   * (a later failure then starts again from failureCacheMs), so names that fail once stay no longer.
   */
  private tidy(): void {
    const now = this.now();
    if (now - this.lastTidy < Math.max(this.failureCacheMs, 1000)) return;
    this.lastTidy = now;
    for (const [serverName, state] of this.backoff) {
      if (state.until + MAX_DESTINATION_BACKOFF_MS <= now) this.backoff.delete(serverName);
    }
    void this.store.purgeExpiredFailures(now).catch(() => undefined);
  }
}
