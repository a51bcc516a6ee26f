// The outbound HTTP layer's kept-alive connection pools: one per scheme for filtered and for trusted targets,
// each reused while open and all ended by close.
import { once } from 'node:events';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { Dns } from '../../src/federation/dns.js';
import { OutboundHttp, type Target } from '../../src/federation/http.js';
import { IpFilter } from '../../src/federation/ip-filter.js';
import { createTestCa, type TestCa } from '../helpers/keys.js';
import { collect } from '../helpers/streams.js';

const TIMEOUTS = { connectMs: 2000, headersMs: 3000 };

let ca: TestCa;
let plain: Server;
let tls: Server;
const open = new Set<Socket>();
let accepted = 0;

beforeAll(async () => {
  ca = await createTestCa();
  const cert = await ca.issue(['127.0.0.1']);
  const answer = (_req: unknown, res: import('node:http').ServerResponse) => res.end('ok');
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
