// A loopback federation peer's key server or notary (node:http on 127.0.0.1), and the key responses it
// serves, self-signed by Synapse's signedjson in the shared Python worker.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SynapseKey } from './keys.js';
import type { PythonWorker } from './python-worker.js';

/** The key server endpoints (v2 and MSC4100's scoped one) and the matching notary queries. */
export const V2 = '/_matrix/key/v2/server';
export const SCOPED = '/_matrix/key/unstable/org.matrix.msc4100/server';
export const QUERY = '/_matrix/key/v2/query';
export const SCOPED_QUERY = '/_matrix/key/unstable/org.matrix.msc4100/query';

export interface ServerKeysSpec {
  readonly serverName: string;
  readonly verifyKeys: readonly SynapseKey[];
  readonly oldVerifyKeys?: readonly SynapseKey[];
  /** MSC4100: the scope array of each key (by key id); keys without an entry get none. */
  readonly scopes?: Readonly<Record<string, readonly string[]>>;
  readonly validUntilTs: number;
  /** The keys that self-sign the response; defaults to verifyKeys. */
  readonly signWith?: readonly SynapseKey[];
  /** The name the signatures are made under; defaults to serverName. */
  readonly signAs?: string;
}

/** A /_matrix/key/v2/server (or MSC4100) response, self-signed by python signedjson. */
export async function serverKeysResponse(python: PythonWorker, spec: ServerKeysSpec): Promise<Record<string, unknown>> {
  const entry = (key: SynapseKey, extra: object) => {
    const scope = spec.scopes?.[key.keyId];
    return { key: key.publicKey, ...extra, ...(scope === undefined ? {} : { scope }) };
  };
  const json: Record<string, unknown> = {
    server_name: spec.serverName,
    valid_until_ts: spec.validUntilTs,
    verify_keys: Object.fromEntries(spec.verifyKeys.map((k) => [k.keyId, entry(k, {})])),
    old_verify_keys: Object.fromEntries((spec.oldVerifyKeys ?? []).map((k) => [k.keyId, entry(k, { expired_ts: spec.validUntilTs - 3600_000 })])),
  };
  return python.sign(json, spec.signAs ?? spec.serverName, spec.signWith ?? spec.verifyKeys);
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly body: unknown;
}

type Answer = { status: number; json: unknown } | 'hang';

/**
 * A loopback HTTP server answering JSON per path, counting every request: a peer's key server or a notary.
 * Paths without an answer get 404 M_UNRECOGNIZED.
 */
export class LoopbackKeyServer {
  readonly requests: RecordedRequest[] = [];
  /** Added before each answer: lets concurrent lookups pile up on one fetch. */
  delayMs = 0;
  private readonly answers = new Map<string, (body: unknown) => Answer | Promise<Answer>>();

  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(): Promise<LoopbackKeyServer> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const keyServer = new LoopbackKeyServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('request', (req, res) => {
      // An answer that fails (the Python signer could not start) is a 500 at once, not a hang until a timeout.
      void keyServer.handle(req).catch((error: Error) => ({ status: 500, json: { errcode: 'M_UNKNOWN', error: error.message } })).then((answer) => {
        if (answer === 'hang') return;
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.json));
      });
    });
    return keyServer;
  }

  /** Answers `path` with `json` (or what the function makes of the request body). */
  answer(path: string, json: unknown | ((body: unknown) => unknown | Promise<unknown>), status = 200): void {
    this.answers.set(path, async (body) => ({ status, json: typeof json === 'function' ? await (json as (b: unknown) => unknown)(body) : json }));
  }

  /** Accepts requests for `path` and never answers them. */
  hang(path: string): void {
    this.answers.set(path, () => 'hang');
  }

  clear(): void {
    this.answers.clear();
    this.requests.length = 0;
  }

  count(path: string): number {
    return this.requests.filter((r) => r.path === path).length;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage): Promise<Answer> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const path = (req.url ?? '').split('?')[0]!;
    const body: unknown = text === '' ? undefined : JSON.parse(text);
    this.requests.push({ method: req.method ?? '', path, body });
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    const answer = this.answers.get(path);
    return answer ? answer(body) : { status: 404, json: { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' } };
  }
}
