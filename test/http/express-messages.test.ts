// Requests and responses made of the express app's prototypes from the start, so that express does not re-parent them.
import { once } from 'node:events';
import { createServer, IncomingMessage, ServerResponse, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { expressMessages } from '../../src/http/express-messages.js';

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  if (server) await new Promise((resolve) => server!.close(resolve));
  server = undefined;
});

async function serve(handler: RequestListener, options: object): Promise<string> {
  server = createServer(options, handler).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function appWithRoute(): express.Express {
  const app = express();
  app.set('trust proxy', 'loopback');
  app.get('/media/:id', (req, res) => {
    res.status(201).json({ id: req.params.id, ip: req.ip, accept: req.get('accept'), node: req instanceof IncomingMessage && res instanceof ServerResponse });
  });
  return app;
}

test('before adopting an app, requests and responses are node plain ones and can be answered', async () => {
  const messages = expressMessages();
  const seen: boolean[] = [];
  const url = await serve((req, res) => {
    seen.push(Object.getPrototypeOf(req) === IncomingMessage.prototype, Object.getPrototypeOf(res) === ServerResponse.prototype);
    res.writeHead(503).end('starting');
  }, messages.options);
  const response = await fetch(`${url}/media/x`);
  expect([response.status, await response.text()]).toEqual([503, 'starting']);
  expect(seen).toEqual([true, true]);
});

test('after adopting, each request reaches express already of its prototypes, and express serves it as usual', async () => {
  const messages = expressMessages();
  const app = appWithRoute();
  messages.adopt(app);
  const seen: boolean[] = [];
  const url = await serve((req, res) => {
    seen.push(Object.getPrototypeOf(req) === app.request, Object.getPrototypeOf(res) === app.response);
    app(req, res);
  }, messages.options);
  for (const id of ['a', 'b']) {
    const response = await fetch(`${url}/media/${id}`, { headers: { accept: 'text/x-test', 'x-forwarded-for': '192.0.2.7' } });
    expect(response.status).toBe(201);
    expect(await response.json()).toEqual({ id, ip: '192.0.2.7', accept: 'text/x-test', node: true });
  }
  expect(seen).toEqual([true, true, true, true]);
});
