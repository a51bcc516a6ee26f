// The outbound HTTP layer's connections: the kept-alive pools (one per scheme for filtered and for trusted
// targets, all ended by close), TLS with the extra CA, deadlines that end at the handshake and the headers, and errors' causes.
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { Dns } from '../../src/federation/dns.js';
import { OutboundHttp, UpstreamError, type Target } from '../../src/federation/http.js';
import { BlockedAddressError, IpFilter } from '../../src/federation/ip-filter.js';
import { failure } from '../helpers/streams.js';
import { createTestCa, type TestCa } from '../helpers/keys.js';
import { collect } from '../helpers/streams.js';
import { freePort } from '../../bench/media-processes.js';

const TIMEOUTS = { connectMs: 2000, headersMs: 3000 };

let ca: TestCa;
let plain: Server;
let tls: Server;
const open = new Set<Socket>();
let accepted = 0;

beforeAll(async () => {
  ca = await createTestCa();
  const cert = await ca.issue(['127.0.0.1']);
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/late') setTimeout(() => res.end('late'), 400);
    else if (req.url === '/trickle') {
      res.write('first ');
      setTimeout(() => res.end('last'), 600);
    } else res.end('ok');
  };
  plain = createHttpServer(answer);
  tls = createHttpsServer({ key: cert.key, cert: cert.cert }, answer);
  const track = (socket: Socket) => {
    accepted++;
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  };
  plain.on('connection', track);
  tls.on('secureConnection', track);
  for (const server of [plain, tls]) {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  }
});
afterAll(async () => {
  for (const server of [plain, tls]) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const targetOf = (server: Server, protocol: Target['protocol'], trusted: boolean): Target => {
  const port = (server.address() as AddressInfo).port;
  return { protocol, endpoints: [{ host: '127.0.0.1', port }], hostHeader: `127.0.0.1:${port}`, tlsServername: undefined, trusted };
};

test('each pool keeps its connection for the next request, and close ends the connections of all four', async () => {
  const http = new OutboundHttp({ dns: new Dns({ timeoutMs: 1000 }), filter: new IpFilter({ allowlist: ['127.0.0.1/32'] }), extraCa: ca.caPem });
  const targets = [targetOf(plain, 'http:', false), targetOf(plain, 'http:', true), targetOf(tls, 'https:', false), targetOf(tls, 'https:', true)];
  accepted = 0;
  for (let round = 0; round < 2; round++) {
    for (const target of targets) expect((await collect((await http.request(target, { path: '/', timeouts: TIMEOUTS })).body)).toString()).toBe('ok');
  }
  // Two rounds over four pools: four connections, the second round on the first round's.
  expect([accepted, open.size]).toEqual([4, 4]);
  http.close();
  const deadline = Date.now() + 5000;
  while (open.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(open.size).toBe(0);
});

describe('over TLS', () => {
  let http: OutboundHttp;
  beforeEach(() => {
    http = new OutboundHttp({ dns: new Dns({ timeoutMs: 1000 }), filter: new IpFilter({ allowlist: ['127.0.0.1/32'] }), extraCa: ca.caPem });
  });
  afterEach(() => http.close());

  test('the connect deadline ends at the handshake: a server answering after it is waited for', async () => {
    const response = await http.request(targetOf(tls, 'https:', false), { path: '/late', timeouts: { connectMs: 200, headersMs: 3000 } });
    expect((await collect(response.body)).toString()).toBe('late');
  });

  test('the header deadline ends at the headers: a body that takes longer is read whole', async () => {
    const response = await http.request(targetOf(tls, 'https:', false), { path: '/trickle', timeouts: { connectMs: 200, headersMs: 300 } });
    expect((await collect(response.body)).toString()).toBe('first last');
  });

  test('an https URL is fetched', async () => {
    const response = await http.fetchUrl(new URL(`https://127.0.0.1:${(tls.address() as AddressInfo).port}/`), { timeouts: TIMEOUTS, maxRedirects: 0 });
    expect((await collect(response.body)).toString()).toBe('ok');
  });
});

test('each error keeps its cause: blocked, refused, and a connection dropped after it was made', async () => {
  const http = new OutboundHttp({ dns: new Dns({ timeoutMs: 1000 }), filter: new IpFilter({}) });
  // Accepts, reads the request, and drops the connection without an answer.
  const dropping = createNetServer((socket) => socket.once('data', () => socket.destroy())).listen(0, '127.0.0.1');
  await once(dropping, 'listening');
  const droppingPort = (dropping.address() as AddressInfo).port;
  const trustedAt = (port: number): Target => ({ protocol: 'http:', endpoints: [{ host: '127.0.0.1', port }], hostHeader: 'peer.test', tlsServername: undefined, trusted: true });
  try {
    const blocked = await failure(http.request(targetOf(plain, 'http:', false), { path: '/', timeouts: TIMEOUTS }));
    expect([(blocked as UpstreamError).kind, (blocked as UpstreamError).cause instanceof BlockedAddressError]).toEqual(['blocked', true]);
    const dropped = await failure(http.request(trustedAt(droppingPort), { path: '/', timeouts: TIMEOUTS }));
    expect([(dropped as UpstreamError).kind, dropped.message, ((dropped as UpstreamError).cause as NodeJS.ErrnoException).code]).toEqual(['bad-response', `connection to 127.0.0.1:${droppingPort} failed: ECONNRESET`, 'ECONNRESET']);
    // A port nothing listens on: refused before connecting.
    const refused = await failure(http.request(trustedAt(await freePort()), { path: '/', timeouts: TIMEOUTS }));
    expect([(refused as UpstreamError).kind, ((refused as UpstreamError).cause as NodeJS.ErrnoException).code]).toEqual(['unreachable', 'ECONNREFUSED']);
  } finally {
    if (dropping.listening) dropping.close();
    http.close();
  }
});
