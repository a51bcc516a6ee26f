// A hosted homeserver as other servers find it, on loopback: its reverse proxy answering the key endpoints
// (self-signed by the homeserver's own key) and the client API's whoami, and passing the media paths on to
// the media repository when set up to (Host kept, as `proxy_set_header Host $host` does).
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateSigningKey, keyId } from '../../src/keys/key-files.js';
import { encodeBase64 } from '../../src/matrix/base64.js';
import { createSigner } from '../../src/matrix/ed25519.js';
import { signJson } from '../../src/matrix/signed-json.js';

export interface PublishedKey {
  keyId: string;
  key: string;
  scope?: string[];
}

export interface FrontSetup {
  serverName: string;
  /** Extra verify_keys at /_matrix/key/v2/server and at the MSC4100 endpoint, beside the homeserver's own key. */
  v2Keys: PublishedKey[];
  scopedKeys: PublishedKey[];
  /** Where /_matrix/federation/v1/media/* and /_matrix/client/v1/media/* go; undefined: the homeserver answers them. */
  mediaRepoUrl?: string;
}

export interface HomeserverFront {
  url: string;
  close(): Promise<void>;
}

export async function startHomeserverFront(setup: FrontSetup): Promise<HomeserverFront> {
  const own = generateSigningKey();
  const signer = createSigner(own.seed);
  // At the MSC4100 endpoint every key has a scope; the homeserver's own one signs events and requests.
  const keysResponse = (extra: PublishedKey[], scoped: boolean) => signJson({
    server_name: setup.serverName,
    valid_until_ts: Date.now() + 24 * 3600_000,
    old_verify_keys: {},
    verify_keys: {
      [keyId(own)]: { key: encodeBase64(signer.publicKey), ...(scoped ? { scope: ['m.events', 'm.requests'] } : {}) },
      ...Object.fromEntries(extra.map((k) => [k.keyId, { key: k.key, ...(k.scope ? { scope: k.scope } : {}) }])),
    },
  }, setup.serverName, keyId(own), signer);

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0]!;
    if (path === '/_matrix/key/v2/server') return json(res, 200, keysResponse(setup.v2Keys, false));
    if (path === '/_matrix/key/unstable/org.matrix.msc4100/server') return json(res, 200, keysResponse(setup.scopedKeys, true));
    if (path === '/_matrix/client/v3/account/whoami') return json(res, 401, { errcode: 'M_MISSING_TOKEN', error: 'Missing access token' });
    const media = /^\/_matrix\/(federation|client)\/v1\/media\//.test(path);
    if (media && setup.mediaRepoUrl) return proxy(req, res, setup.mediaRepoUrl, setup.serverName);
    // What Synapse answers for media it does not have.
    if (media) return json(res, 404, { errcode: 'M_NOT_FOUND', error: 'Not found' });
    json(res, 404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function proxy(req: IncomingMessage, res: ServerResponse, target: string, host: string): void {
  const upstream = request(`${target}${req.url}`, { method: req.method, headers: { ...req.headers, host }, agent: false }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => json(res, 502, { errcode: 'M_UNKNOWN', error: 'bad gateway' }));
  req.pipe(upstream);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
