// In-process coordination of expensive work: one run per key, and at most N runs at once. Work still
// waiting for its turn is dropped once every caller that wanted it has gone away.

interface Flight<T> {
  promise: Promise<T>;
  /** Callers still waiting for the result; a caller without a signal never leaves. */
  waiters: number;
  abandoned: AbortController;
}

/** Concurrent calls with the same key share one run of `work`, told (by its signal) when all of them have left. */
export class SingleFlight<T> {
  private readonly running = new Map<string, Flight<T>>();

  run(key: string, work: (abandoned: AbortSignal) => Promise<T>, left?: AbortSignal): Promise<T> {
    let flight = this.running.get(key);
    if (!flight) {
      const abandoned = new AbortController();
      const promise = work(abandoned.signal).finally(() => this.running.delete(key));
      flight = { promise, waiters: 0, abandoned };
      this.running.set(key, flight);
    }
    const joined = flight;
    joined.waiters++;
    const leave = () => {
      if (--joined.waiters === 0) joined.abandoned.abort();
    };
    if (left?.aborted) leave();
    else left?.addEventListener('abort', leave, { once: true });
    return joined.promise;
  }
}

/** What a task still queued rejects with when its signal aborts. */
export class AbandonedError extends Error {
  constructor() {
    super('abandoned before it started: every caller went away');
  }
}

/** Runs at most `limit` tasks at once; the rest wait in arrival order, unless their signal aborts first. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  /** True when a task run now would have to wait. */
  get full(): boolean {
    return this.active >= this.limit;
  }

  async run<T>(task: () => Promise<T>, abandoned?: AbortSignal): Promise<T> {
    if (this.active >= this.limit) await this.turn(abandoned);
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** Resolves when a finishing task hands its slot over; rejects, leaving the queue, if abandoned first. */
  private turn(abandoned?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (abandoned?.aborted) return reject(new AbandonedError());
      const handOver = () => {
        abandoned?.removeEventListener('abort', leave);
        resolve();
      };
      const leave = () => {
        this.waiting.splice(this.waiting.indexOf(handOver), 1);
        reject(new AbandonedError());
      };
      abandoned?.addEventListener('abort', leave, { once: true });
      this.waiting.push(handOver);
    });
  }
}
