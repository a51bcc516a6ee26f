// A kept-alive connection to a remote can be closed by it at the moment we reuse it (its idle timeout):
// that request never reached the remote, so it is sent once more on a fresh connection, not failed.
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Dns } from '../../src/federation/dns.js';
import { OutboundHttp, targetForUrl, UpstreamError, type Target } from '../../src/federation/http.js';
import { IpFilter } from '../../src/federation/ip-filter.js';
import { collect, failure } from '../helpers/streams.js';

const TIMEOUTS = { connectMs: 2000, headersMs: 3000 };

/** A raw HTTP server whose `answer` decides, per request and per connection, to reply or to drop the connection. */
async function startServer(answer: (connection: number, requestOnConnection: number) => 'reply' | 'drop' | 'reset'): Promise<{ server: Server; target: Target; counts: { connections: number; requests: number } }> {
  const counts = { connections: 0, requests: 0 };
  const server = createServer((socket: Socket) => {
    const connection = ++counts.connections;
    let onConnection = 0;
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      while (buffered.includes('\r\n\r\n')) {
        buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
        counts.requests++;
        const action = answer(connection, ++onConnection);
        if (action === 'drop') socket.destroy();
        else if (action === 'reset') socket.resetAndDestroy();
        else socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nc${connection}r${onConnection}`);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const target = { ...targetForUrl(new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)), trusted: true };
  return { server, target, counts };
}

const text = async (response: { body: AsyncIterable<Uint8Array> }) => (await collect(response.body)).toString();

describe('outbound HTTP on kept-alive connections', () => {
  let http: OutboundHttp;
  beforeEach(() => {
    http = new OutboundHttp({ dns: new Dns({ timeoutMs: 1000 }), filter: new IpFilter({}) });
  });
  afterEach(() => http.close());

  test.each(['drop', 'reset'] as const)('a reused connection the server closes (%s) is retried once on a new one', async (how) => {
    const peer = await startServer((_connection, request) => (request === 1 ? 'reply' : how));
    try {
      expect(await text(await http.request(peer.target, { path: '/a', timeouts: TIMEOUTS }))).toBe('c1r1');
      const second = await http.request(peer.target, { path: '/b', timeouts: TIMEOUTS });
      expect(second.status).toBe(200);
      expect(await text(second)).toBe('c2r1');
      expect([peer.counts.connections, peer.counts.requests]).toEqual([2, 3]);
    } finally {
      peer.server.close();
    }
  });

  test('a fresh connection the server closes is not retried: the request may have been acted on', async () => {
    const peer = await startServer(() => 'drop');
    try {
      const error = await failure(http.request(peer.target, { path: '/a', timeouts: TIMEOUTS }));
      expect(error).toBeInstanceOf(UpstreamError);
      expect((error as UpstreamError).kind).toBe('bad-response');
      expect([peer.counts.connections, peer.counts.requests]).toEqual([1, 1]);
    } finally {
      peer.server.close();
    }
  });

  test('only once: a retry that fails on its reused connection too gives the error', async () => {
    // Every connection answers its first request and drops on the second; two kept-alive sockets are idle.
    const peer = await startServer((_connection, request) => (request === 1 ? 'reply' : 'drop'));
    try {
      const [a, b] = await Promise.all([http.request(peer.target, { path: '/a', timeouts: TIMEOUTS }), http.request(peer.target, { path: '/b', timeouts: TIMEOUTS })]);
      await Promise.all([text(a), text(b)]);
      const error = await failure(http.request(peer.target, { path: '/c', timeouts: TIMEOUTS }));
      expect((error as UpstreamError).kind).toBe('bad-response');
      expect([peer.counts.connections, peer.counts.requests]).toEqual([2, 4]);
    } finally {
      peer.server.close();
    }
  });
});
