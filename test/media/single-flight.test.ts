// Shared runs and bounded concurrency, and dropping queued work whose callers all went away.
import { AbandonedError, Semaphore, SingleFlight } from '../../src/media/single-flight.js';

function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => { open = resolve; });
  return { opened, open };
}

describe('Semaphore', () => {
  test('a queued task whose signal aborts leaves the queue without running; the others keep their order', async () => {
    const slots = new Semaphore(1);
    const first = gate();
    const ran: string[] = [];
    const a = slots.run(async () => { ran.push('a'); await first.opened; });
    const gone = new AbortController();
    const b = slots.run(async () => { ran.push('b'); }, gone.signal);
    const c = slots.run(async () => { ran.push('c'); }, new AbortController().signal);
    expect(slots.full).toBe(true);
    gone.abort();
    await expect(b).rejects.toBeInstanceOf(AbandonedError);
    first.open();
    await Promise.all([a, c]);
    expect(ran).toEqual(['a', 'c']);
    expect(slots.full).toBe(false);
    await slots.run(async () => { ran.push('d'); });
    expect(ran).toEqual(['a', 'c', 'd']);
  });

  test('a task already running is not stopped by its signal, and a signal aborted before queueing never queues', async () => {
    const slots = new Semaphore(1);
    const running = new AbortController();
    const first = gate();
    const a = slots.run(async () => { await first.opened; return 'done'; }, running.signal);
    running.abort();
    const late = AbortSignal.abort();
    await expect(slots.run(async () => 'never', late)).rejects.toBeInstanceOf(AbandonedError);
    first.open();
    await expect(a).resolves.toBe('done');
    expect(slots.full).toBe(false);
  });
});

describe('SingleFlight', () => {
  test('callers share one run, which is told it is abandoned only once every caller has left', async () => {
    const flights = new SingleFlight<string>();
    const done = gate();
    let seen: AbortSignal | undefined;
    let runs = 0;
    const work = async (abandoned: AbortSignal) => { runs++; seen = abandoned; await done.opened; return 'thumbnail'; };
    const one = new AbortController();
    const two = new AbortController();
    const first = flights.run('k', work, one.signal);
    const second = flights.run('k', work, two.signal);
    expect(runs).toBe(1);
    one.abort();
    expect(seen!.aborted).toBe(false);
    two.abort();
    expect(seen!.aborted).toBe(true);
    done.open();
    expect(await Promise.all([first, second])).toEqual(['thumbnail', 'thumbnail']);
  });

  test('a caller without a signal keeps the run wanted; a finished run is not shared with later callers', async () => {
    const flights = new SingleFlight<number>();
    let runs = 0;
    let seen: AbortSignal | undefined;
    const done = gate();
    const work = async (abandoned: AbortSignal) => { seen = abandoned; await done.opened; return ++runs; };
    const gone = new AbortController();
    const staying = flights.run('k', work);
    const leaving = flights.run('k', work, gone.signal);
    gone.abort();
    expect(seen!.aborted).toBe(false);
    done.open();
    expect([await staying, await leaving]).toEqual([1, 1]);
    expect(await flights.run('k', work)).toBe(2);
  });
});
