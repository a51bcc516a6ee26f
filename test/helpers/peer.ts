// A loopback federation peer built from Synapse's own libraries: keys generated and objects signed by
// python signedjson (one long-running /usr/bin/python3), X-Matrix headers written the way Synapse's
// MatrixFederationHttpClient.build_auth_headers writes them, key responses served by node:http on 127.0.0.1.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { SYSTEM_PYTHON } from './python.js';

export interface PeerKey {
  /** e.g. ed25519:a1 */
  readonly keyId: string;
  readonly version: string;
  /** Unpadded Base64 seed as signedjson writes it. */
  readonly seed: string;
  /** Unpadded Base64 public key as signedjson writes it. */
  readonly publicKey: string;
}

export interface RequestToSign {
  readonly method: string;
  readonly uri: string;
  readonly origin: string;
  readonly destination: string;
  readonly content?: unknown;
  /** Write the header as Synapse did before the destination param (spec v1.3); the JSON still signs it. */
  readonly legacyHeader?: boolean;
}

const SIGNER_SCRIPT = String.raw`
import sys, json
from signedjson.key import generate_signing_key, encode_signing_key_base64, encode_verify_key_base64, get_verify_key, decode_signing_key_base64
from signedjson.sign import sign_json

def key_of(k):
    return decode_signing_key_base64("ed25519", k["version"], k["seed"])

def build_auth_headers(req, keys, scheme):
    # synapse/http/matrixfederationclient.py build_auth_headers
    request = {"method": req["method"], "uri": req["uri"], "origin": req["origin"], "destination": req["destination"]}
    if req.get("content") is not None:
        request["content"] = req["content"]
    for k in keys:
        request = sign_json(request, req["origin"], key_of(k))
    headers = []
    for key, sig in request["signatures"][req["origin"]].items():
        if req.get("legacyHeader"):
            headers.append('%s origin=%s,key="%s",sig="%s"' % (scheme, req["origin"], key, sig))
        else:
            headers.append('%s origin="%s",key="%s",sig="%s",destination="%s"' % (scheme, req["origin"], key, sig, request["destination"]))
    return headers

for line in sys.stdin:
    cmd = json.loads(line)
    op = cmd["op"]
    if op == "generate":
        k = generate_signing_key(cmd["version"])
        out = {"keyId": "ed25519:" + k.version, "version": k.version, "seed": encode_signing_key_base64(k),
               "publicKey": encode_verify_key_base64(get_verify_key(k))}
    elif op == "sign":
        obj = cmd["json"]
        for k in cmd["keys"]:
            obj = sign_json(obj, cmd["name"], key_of(k))
        out = obj
    elif op == "headers":
        out = build_auth_headers(cmd["request"], cmd["keys"], cmd["scheme"])
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
`;

/** One python process answering sign requests in order. */
export class SynapseSigner {
  private readonly pending: Array<{ resolve(value: unknown): void; reject(error: Error): void }> = [];
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => this.pending.shift()?.resolve(JSON.parse(line)));
    child.stderr.on('data', (chunk: Buffer) => { this.stderr += chunk.toString(); });
    child.on('exit', () => {
      for (const waiter of this.pending.splice(0)) waiter.reject(new Error(`python signer exited: ${this.stderr}`));
    });
  }

  static start(): SynapseSigner {
    return new SynapseSigner(spawn(SYSTEM_PYTHON, ['-u', '-c', SIGNER_SCRIPT], { stdio: 'pipe' }));
  }

  generateKey(version: string): Promise<PeerKey> {
    return this.call({ op: 'generate', version }) as Promise<PeerKey>;
  }

  /** signedjson.sign.sign_json with each key in turn. */
  sign<T extends object>(json: T, name: string, keys: readonly PeerKey[]): Promise<T & { signatures: Record<string, Record<string, string>> }> {
    return this.call({ op: 'sign', json, name, keys }) as Promise<T & { signatures: Record<string, Record<string, string>> }>;
  }

  /** The Authorization values Synapse sends for this request: one per signing key. */
  authHeaders(request: RequestToSign, keys: readonly PeerKey[], scheme = 'X-Matrix'): Promise<string[]> {
    return this.call({ op: 'headers', request, keys, scheme }) as Promise<string[]>;
  }

  async close(): Promise<void> {
    this.child.stdin.end();
    if (this.child.exitCode === null) await once(this.child, 'exit');
  }

  private call(command: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.child.stdin.write(`${JSON.stringify(command)}\n`);
    });
  }
}

export interface ServerKeysSpec {
  readonly serverName: string;
  readonly verifyKeys: readonly PeerKey[];
  readonly oldVerifyKeys?: readonly PeerKey[];
  /** MSC4100: the scope array of each key (by key id); keys without an entry get none. */
  readonly scopes?: Readonly<Record<string, readonly string[]>>;
  readonly validUntilTs: number;
  /** The keys that self-sign the response; defaults to verifyKeys. */
  readonly signWith?: readonly PeerKey[];
  /** The name the signatures are made under; defaults to serverName. */
  readonly signAs?: string;
}

/** A /_matrix/key/v2/server (or MSC4100) response, self-signed by python signedjson. */
export async function serverKeysResponse(signer: SynapseSigner, spec: ServerKeysSpec): Promise<Record<string, unknown>> {
  const entry = (key: PeerKey, extra: object) => {
    const scope = spec.scopes?.[key.keyId];
    return { key: key.publicKey, ...extra, ...(scope === undefined ? {} : { scope }) };
  };
  const json: Record<string, unknown> = {
    server_name: spec.serverName,
    valid_until_ts: spec.validUntilTs,
    verify_keys: Object.fromEntries(spec.verifyKeys.map((k) => [k.keyId, entry(k, {})])),
    old_verify_keys: Object.fromEntries((spec.oldVerifyKeys ?? []).map((k) => [k.keyId, entry(k, { expired_ts: spec.validUntilTs - 3600_000 })])),
  };
  return signer.sign(json, spec.signAs ?? spec.serverName, spec.signWith ?? spec.verifyKeys);
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
      void keyServer.handle(req).then((answer) => {
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
