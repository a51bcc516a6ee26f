// How an outbound response body is bounded (limitedBody, readLimited): its size, declared or not, and its
// pauses, which count only while the reader wants more.
import { PassThrough } from 'node:stream';
import { limitedBody, readLimited, type UpstreamError } from '../../src/federation/http.js';
import { collect, failure } from '../helpers/streams.js';

describe('limitedBody', () => {
  const source = (headers?: Record<string, string>) => Object.assign(new PassThrough(), headers ? { headers } : {});

  test('a declared length of exactly the limit is read; one byte more fails before any is read, naming the body', async () => {
    const exact = source({ 'content-length': '4' });
    const body = limitedBody(exact, { maxBytes: 4, idleMs: 1000 }, 'thing');
    exact.end('abcd');
    expect((await collect(body)).toString()).toBe('abcd');
    const over = source({ 'content-length': '5' });
    const error = (() => {
      try {
        limitedBody(over, { maxBytes: 4, idleMs: 1000 }, 'thing');
      } catch (e) {
        return e as UpstreamError;
      }
    })();
    expect([error?.kind, error?.message, over.destroyed]).toEqual(['too-large', 'the thing is 5 bytes, more than the limit of 4', true]);
  });

  test('headers passed in are used over the stream\'s own; without a name it is "the response"', () => {
    const res = source({ 'content-length': '1' });
    expect(() => limitedBody(res, { maxBytes: 4, idleMs: 1000 }, undefined, { 'content-length': '9' })).toThrow('the response is 9 bytes, more than the limit of 4');
  });

  test('undeclared bytes up to the limit pass; past it the body fails', async () => {
    const exact = source();
    const body = limitedBody(exact, { maxBytes: 6, idleMs: 1000 }, 'thing');
    exact.write('abc');
    exact.end('def');
    expect((await collect(body)).toString()).toBe('abcdef');
    const over = source();
    const failing = limitedBody(over, { maxBytes: 6, idleMs: 1000 }, 'thing');
    over.write('abcd');
    over.write('efg');
    const error = await failure(collect(failing));
    expect([(error as UpstreamError).kind, error.message, over.destroyed]).toEqual(['too-large', 'the thing is larger than the limit of 6 bytes', true]);
  });

  test('a pause longer than idleMs fails; a source that errors or closes early is cut off', async () => {
    const stalled = source();
    const body = limitedBody(stalled, { maxBytes: 100, idleMs: 200 }, 'thing');
    stalled.write('a');
    const error = await failure(collect(body));
    expect([(error as UpstreamError).kind, error.message]).toEqual(['timeout', 'the thing stalled for 200 ms']);

    const broken = source();
    const cut = limitedBody(broken, { maxBytes: 100, idleMs: 1000 }, 'thing');
    broken.write('a');
    setImmediate(() => broken.destroy(new Error('reset')));
    const cutError = await failure(collect(cut));
    expect([(cutError as UpstreamError).kind, cutError.message]).toEqual(['truncated', 'the thing was cut off: reset']);

    const closed = source();
    const early = limitedBody(closed, { maxBytes: 100, idleMs: 1000 }, 'thing');
    setImmediate(() => closed.destroy());
    const closedError = await failure(collect(early));
    expect([(closedError as UpstreamError).kind, closedError.message]).toEqual(['truncated', 'the thing was cut off']);
  });

  test('a source that trickles, each pause shorter than idleMs, is read whole however long it takes', async () => {
    const trickle = source();
    const body = collect(limitedBody(trickle, { maxBytes: 100, idleMs: 300 }, 'thing'));
    for (let i = 0; i < 10; i++) {
      trickle.write('x');
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    trickle.end();
    expect((await body).toString()).toBe('x'.repeat(10));
  });

  test('a reader slower than idleMs is not a stall: bytes waiting for it stop the clock', async () => {
    const fast = source();
    const chunk = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 48; i++) fast.write(chunk); // 3 MiB at once, past the body's 1 MiB buffer
    const body = limitedBody(fast, { maxBytes: 8 * 1024 * 1024, idleMs: 100 }, 'thing');
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const piece of body) {
      if (chunks.length === 0) await new Promise((resolve) => setTimeout(resolve, 300)); // the reader dawdles
      chunks.push(piece as Buffer);
      received += (piece as Buffer).length;
      if (received === 48 * chunk.length) fast.end(); // the source stays open until then: only its end stops the clock otherwise
    }
    expect(Buffer.concat(chunks).equals(Buffer.concat(Array(48).fill(chunk)))).toBe(true);
  });

  test('readLimited gives the whole body within the limit', async () => {
    const res = source();
    res.end('whole');
    expect((await readLimited(res, { maxBytes: 5, idleMs: 1000 })).toString()).toBe('whole');
  });
});
