// A loopback TCP proxy in front of a server that can misbehave on demand: refuse connections, stall,
// answer every request with one canned HTTP error, or drop the connection after N bytes either way.
// The mode applies to open (keep-alive) connections too, from their next chunk on.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

export type ProxyMode =
  | { kind: 'pass' }
  | { kind: 'down' }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'status'; status: number; code: string }
  | { kind: 'dropUpload'; afterBytes: number }
  | { kind: 'dropDownload'; afterBytes: number };

export interface FaultyProxy {
  url: string;
  mode: ProxyMode;
  close(): Promise<void>;
}

export async function startFaultyProxy(target: { host: string; port: number }): Promise<FaultyProxy> {
  const sockets = new Set<Socket>();
  const proxy: FaultyProxy = { url: '', mode: { kind: 'pass' }, close: async () => {} };
  const server: Server = createServer((client) => {
    if (proxy.mode.kind === 'down') {
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    const cut = () => { client.destroy(); upstream.destroy(); };
    client.on('error', cut).on('close', cut);
    upstream.on('error', cut).on('close', cut);
    let sent = 0;
    let received = 0;
    client.on('data', (chunk: Buffer) => {
      const mode = proxy.mode;
      if (mode.kind === 'down') return cut();
      if (mode.kind === 'status') {
        const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${mode.code}</Code><Message>injected</Message></Error>`;
        client.end(`HTTP/1.1 ${mode.status} Injected\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
        upstream.destroy();
        return;
      }
      sent += chunk.length;
      if (mode.kind === 'dropUpload' && sent > mode.afterBytes) return cut();
      later(mode, () => upstream.write(chunk));
    });
    upstream.on('data', (chunk: Buffer) => {
      const mode = proxy.mode;
      received += chunk.length;
      if (mode.kind === 'dropDownload' && received > mode.afterBytes) {
        client.write(chunk.subarray(0, Math.max(0, chunk.length - (received - mode.afterBytes))));
        return cut();
      }
      later(mode, () => client.write(chunk));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}

function later(mode: ProxyMode, write: () => void): void {
  if (mode.kind === 'slow') setTimeout(write, mode.delayMs);
  else write();
}
