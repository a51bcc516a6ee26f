// One upstream request per remote media across instances: the fetching instance holds a lock row in
// PostgreSQL (remote_fetches) and heartbeats it; the others poll for its outcome, and take the lock over
// when its holder stops heartbeating or its instance is dead.
import { notAvailableYet } from './remote-errors.js';
import type { RemoteFetchStore } from './remote-store.js';
import { pollUntil } from './poll.js';

export interface FetchLockSettings {
  heartbeatMs: number;
  /** A holder silent this long has lost the lock. */
  staleMs: number;
  /** How long to wait on another instance's fetch. */
  maxWaitMs: number;
  now: () => number;
  /** The instances alive: a dead one's lock is taken over at once, not after staleMs. */
  liveInstances?: () => Promise<ReadonlySet<string>>;
}

export class FetchLock {
  private heartbeat: NodeJS.Timeout | undefined;
  private held = false;

  constructor(
    private readonly store: RemoteFetchStore,
    private readonly fetchKey: string,
    private readonly owner: string,
    private readonly settings: FetchLockSettings,
  ) {}

  /**
   * Takes the lock (undefined), or returns what `meanwhile` finds while another instance holds it (it runs
   * between polls and may throw to stop waiting). Past maxWaitMs: 504 M_NOT_YET_UPLOADED.
   */
  async acquireOr<T>(meanwhile: () => Promise<T | undefined>): Promise<T | undefined> {
    const { now, staleMs } = this.settings;
    let first = true;
    const outcome = await pollUntil<{ locked: true } | { found: T }>(async () => {
      // A free key (the usual case) is taken without first asking which instances live; only a held one may be a dead instance's.
      if (first) {
        first = false;
        const at = now();
        if (await this.store.tryLock(this.fetchKey, this.owner, at, at - staleMs)) return { locked: true };
      }
      const live = await this.settings.liveInstances?.();
      const at = now();
      if (await this.store.tryLock(this.fetchKey, this.owner, at, at - staleMs, live)) return { locked: true };
      const found = await meanwhile();
      return found === undefined ? undefined : { found };
    }, { deadline: now() + this.settings.maxWaitMs, timedOut: notAvailableYet, now });
    if ('found' in outcome) return outcome.found;
    this.held = true;
    this.heartbeat = setInterval(() => {
      void this.store.heartbeat(this.fetchKey, this.owner, now()).catch(() => undefined);
    }, this.settings.heartbeatMs);
    return undefined;
  }

  async release(): Promise<void> {
    clearInterval(this.heartbeat);
    if (this.held) await this.store.unlock(this.fetchKey, this.owner).catch(() => undefined);
    this.held = false;
  }
}
