// The outbound stack as the service builds it from its config (src/federation/outbound.ts): overrides, the
// request deadline and the User-Agent reach a peer on loopback; an unreadable caFile is a clear start-up error.
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../src/config/config.js';
import { UpstreamError } from '../../src/federation/http.js';
import { createFederationClient } from '../../src/federation/outbound.js';
import { createLogger } from '../../src/log.js';

const noKeys = { activeKey: async () => undefined };
let peer: Server;
let peerUrl: string;
const seen: IncomingMessage[] = [];

beforeAll(async () => {
  peer = createServer((req, res) => {
    seen.push(req);
    if (req.url === '/slow') return; // never answers: only the request deadline ends it
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end('{}');
  });
  peer.listen(0, '127.0.0.1');
  await once(peer, 'listening');
  peerUrl = `http://127.0.0.1:${(peer.address() as AddressInfo).port}`;
});

afterAll(() => {
  peer.closeAllConnections();
  peer.close();
});

test('serverOverrides, requestTimeoutMs and the User-Agent come from the config', async () => {
  const config = buildConfig({ federation: { serverOverrides: { 'peer.test': peerUrl }, requestTimeoutMs: 300 } });
  const client = createFederationClient(config, noKeys, createLogger('silent'));
  try {
    const response = await client.get('peer.test', '/fast', { signed: false });
    response.body.resume();
    expect(response.status).toBe(200);
    expect(seen.at(-1)!.headers['user-agent']).toBe('matrix-media-repo-ts');
    const started = Date.now();
    const error = await client.get('peer.test', '/slow', { signed: false }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamError);
    expect(Date.now() - started).toBeLessThan(10_000); // the default deadline is 60 s
  } finally {
    client.close();
  }
});

test('an unreadable caFile stops start-up naming the file and why', () => {
  const dir = mkdtempSync(join(tmpdir(), 'outbound-ca-'));
  const config = buildConfig({ federation: { caFile: 'missing.pem' } }, join(dir, 'config.yaml'));
  expect(() => createFederationClient(config, noKeys, createLogger('silent'))).toThrow(`federation.caFile: cannot read ${join(dir, 'missing.pem')} (ENOENT)`);
});
