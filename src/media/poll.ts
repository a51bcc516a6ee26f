// Waiting on a row that another request or instance will change: polled with back-off, not LISTEN/NOTIFY,
// since the embedded database has a single connection to share.
import { setTimeout as sleep } from 'node:timers/promises';

const FIRST_POLL_MS = 50;
const MAX_POLL_MS = 1000;

export interface PollOptions {
  /** When to give up, on the `now` clock. */
  deadline: number;
  /** The error thrown at the deadline, or when the `cancel` signal aborts. */
  timedOut: () => Error;
  /** Stops waiting, e.g. when the client goes away; asked for only once a wait must sleep. */
  cancel?: () => AbortSignal;
  now?: () => number;
}

/** Calls `attempt` until it returns a value (or throws), sleeping 50 ms, then twice as long each time up to 1 s. */
export async function pollUntil<T>(attempt: () => Promise<T | undefined>, options: PollOptions): Promise<T> {
  const now = options.now ?? Date.now;
  let signal: AbortSignal | undefined;
  for (let delay = FIRST_POLL_MS; ; delay = Math.min(delay * 2, MAX_POLL_MS)) {
    const result = await attempt();
    if (result !== undefined) return result;
    const remaining = options.deadline - now();
    if (remaining <= 0) throw options.timedOut();
    signal ??= options.cancel?.();
    await sleep(Math.min(delay, remaining), undefined, { signal }).catch(() => { throw options.timedOut(); });
  }
}
