// One long-lived Debian /usr/bin/python3 with Synapse's own libraries (python3-signedjson, -nacl,
// -canonicaljson), shared by every interop test of a test file. It answers JSON lines carrying ids:
// {"id", "op", ...} in, {"id", "ok": true, "result"} or {"id", "ok": false, "error"} out. The ops:
// generate a key, sign JSON, write X-Matrix headers as Synapse does, check a request's Authorization header
// as Synapse does, and run a test's own script (stdin, argv and stdout redirected).
// If the process cannot start, or dies, every pending and every later call rejects at once with its stderr.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { SynapseKey } from './keys.js';

/** Debian's interpreter; MEDIA_REPO_TEST_PYTHON only lets a check point it elsewhere (e.g. at nothing). */
export const SYSTEM_PYTHON = process.env.MEDIA_REPO_TEST_PYTHON ?? '/usr/bin/python3';

const WORKER_SCRIPT = String.raw`
import io, json, re, sys, traceback
from signedjson.key import (decode_signing_key_base64, decode_verify_key_bytes, encode_signing_key_base64,
                            encode_verify_key_base64, generate_signing_key, get_verify_key, write_signing_keys)
from signedjson.sign import sign_json, verify_signed_json
from unpaddedbase64 import decode_base64

def key_of(k):
    return decode_signing_key_base64("ed25519", k["version"], k["seed"])

def generate(cmd):
    key = generate_signing_key(cmd["version"])
    out = io.StringIO()
    write_signing_keys(out, [key])
    return {"keyId": "ed25519:" + key.version, "version": key.version, "seed": encode_signing_key_base64(key),
            "publicKey": encode_verify_key_base64(get_verify_key(key)), "file": out.getvalue()}

def sign(cmd):
    obj = cmd["json"]
    for k in cmd["keys"]:
        obj = sign_json(obj, cmd["name"], key_of(k))
    return obj

def headers(cmd):
    # synapse/http/matrixfederationclient.py build_auth_headers
    req, scheme = cmd["request"], cmd["scheme"]
    request = {"method": req["method"], "uri": req["uri"], "origin": req["origin"], "destination": req["destination"]}
    if req.get("content") is not None:
        request["content"] = req["content"]
    for k in cmd["keys"]:
        request = sign_json(request, req["origin"], key_of(k))
    out = []
    for key, sig in request["signatures"][req["origin"]].items():
        if req.get("legacyHeader"):
            out.append('%s origin=%s,key="%s",sig="%s"' % (scheme, req["origin"], key, sig))
        else:
            out.append('%s origin="%s",key="%s",sig="%s",destination="%s"' % (scheme, req["origin"], key, sig, request["destination"]))
    return out

def parse_auth_header(header):
    # synapse/federation/transport/server/_base.py _parse_auth_header
    params = re.split(" |\t", header, maxsplit=1)[1].split(",")
    param_dict = {k.lower(): v for k, v in [param.split("=", maxsplit=1) for param in params]}
    def strip_quotes(value):
        if value.startswith('"'):
            return re.sub(r"\\(.)", lambda m: m.group(1), value[1:-1])
        return value
    origin = strip_quotes(param_dict["origin"])
    key = strip_quotes(param_dict["key"])
    sig = strip_quotes(param_dict["sig"])
    destination = strip_quotes(param_dict["destination"]) if "destination" in param_dict else None
    return origin, key, sig, destination

def verify(request):
    try:
        headers = [h for h in request["headers"] if h.split(" ", 1)[0] == request["scheme"]]
        if not headers:
            raise ValueError("no %s Authorization header" % request["scheme"])
        origin, key, sig, destination = parse_auth_header(headers[0])
        if destination != request["destination"]:
            raise ValueError("destination %r is not %r" % (destination, request["destination"]))
        keys = request["keys"].get(origin, {})
        if key not in keys:
            raise ValueError("unknown key %s of %s" % (key, origin))
        json_request = {"method": request["method"], "uri": request["uri"], "destination": destination, "origin": origin,
                        "signatures": {origin: {key: sig}}}
        verify_signed_json(json_request, origin, decode_verify_key_bytes(key, decode_base64(keys[key])))
        return {"ok": True, "origin": origin, "key": key}
    except Exception as error:
        return {"ok": False, "error": "%s: %s" % (type(error).__name__, error)}

def run(cmd):
    saved = sys.stdin, sys.stdout, sys.argv
    out = io.StringIO()
    sys.stdin, sys.stdout, sys.argv = io.StringIO(cmd["stdin"]), out, ["-c", *cmd["args"]]
    try:
        exec(compile(cmd["script"], "<script>", "exec"), {"__name__": "__main__"})
    except SystemExit as exit:
        if exit.code not in (None, 0):
            raise
    finally:
        sys.stdin, sys.stdout, sys.argv = saved
    return out.getvalue()

OPS = {"generate": generate, "sign": sign, "headers": headers, "verify": verify, "run": run}
reply = sys.stdout
for line in sys.stdin:
    cmd = json.loads(line)
    try:
        answer = {"id": cmd["id"], "ok": True, "result": OPS[cmd["op"]](cmd)}
    except BaseException:
        answer = {"id": cmd["id"], "ok": False, "error": traceback.format_exc()}
    reply.write(json.dumps(answer) + "\n")
    reply.flush()
`;

export interface RequestToSign {
  readonly method: string;
  readonly uri: string;
  readonly origin: string;
  readonly destination: string;
  readonly content?: unknown;
  /** Write the header as Synapse did before the destination param (spec v1.3); the JSON still signs it. */
  readonly legacyHeader?: boolean;
}

/** origin server name -> key id -> unpadded Base64 public key */
export type TrustedKeys = Record<string, Record<string, string>>;

export interface RequestToVerify {
  method: string;
  uri: string;
  destination: string;
  /** Every Authorization value received; the first of `scheme` is checked. */
  headers: string[];
  scheme: string;
  keys: TrustedKeys;
}

export interface Verdict {
  ok: boolean;
  origin?: string;
  key?: string;
  error?: string;
}

type Pending = { resolve(value: unknown): void; reject(error: Error): void };

let shared: PythonWorker | undefined;

export class PythonWorker {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderr = '';
  /** Set once the process is gone: every call from then on rejects with it. */
  private failure: Error | undefined;
  private closing = false;
  private users = 0;

  /** The shared worker (started on first use) for one more user, until that user calls release(). */
  static acquire(): PythonWorker {
    shared ??= new PythonWorker();
    shared.users++;
    return shared;
  }

  /** Gives the worker back: the last user's release ends the process. */
  async release(): Promise<void> {
    if (--this.users > 0) return;
    if (shared === this) shared = undefined;
    await this.close();
  }

  private constructor() {
    this.child = spawn(SYSTEM_PYTHON, ['-u', '-c', WORKER_SCRIPT], { stdio: 'pipe' });
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.child.stdin.on('error', () => undefined); // a dead process: reported by 'close' below
    this.child.on('error', (error) => this.fail(`could not run ${SYSTEM_PYTHON}: ${error.message}`));
    this.child.on('close', (code, signal) => this.fail(`${SYSTEM_PYTHON} exited (${signal ?? `code ${code}`})`));
    createInterface({ input: this.child.stdout }).on('line', (line) => this.answer(line));
  }

  /** A fresh Synapse key: id, version, seed, public key and the key file signedjson writes. */
  generateKey(version: string): Promise<SynapseKey> {
    return this.call('generate', { version });
  }

  /** signedjson.sign.sign_json with each key in turn. */
  sign<T extends object>(json: T, name: string, keys: readonly SynapseKey[]): Promise<T & { signatures: Record<string, Record<string, string>> }> {
    return this.call('sign', { json, name, keys });
  }

  /** The Authorization values Synapse sends for this request: one per signing key. */
  authHeaders(request: RequestToSign, keys: readonly SynapseKey[], scheme = 'X-Matrix'): Promise<string[]> {
    return this.call('headers', { request, keys, scheme });
  }

  /** Synapse's check of an inbound request's Authorization header. */
  verifyRequest(request: RequestToVerify): Promise<Verdict> {
    return this.call('verify', request);
  }

  /** Runs `script` with `stdin` and `args` (sys.argv[1:]) and returns what it printed; an exception rejects with its traceback. */
  run(script: string, stdin = '', args: string[] = []): Promise<string> {
    return this.call('run', { script, stdin, args });
  }

  call<T>(op: string, args: object): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin.write(`${JSON.stringify({ ...args, id, op })}\n`);
    }) as Promise<T>;
  }

  private async close(): Promise<void> {
    this.closing = true;
    this.child.stdin.end();
    if (this.child.exitCode === null && this.child.signalCode === null && !this.failure) await once(this.child, 'close');
  }

  private answer(line: string): void {
    let message: { id: number; ok: boolean; result?: unknown; error?: string } | undefined;
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      // reported below
    }
    const waiter = typeof message?.id === 'number' ? this.pending.get(message.id) : undefined;
    if (!message || !waiter) {
      this.child.kill();
      this.fail(`${SYSTEM_PYTHON} wrote a line that answers no pending call: ${line}`);
      return;
    }
    this.pending.delete(message.id);
    if (message.ok) waiter.resolve(message.result);
    else waiter.reject(new Error(`python failed:\n${message.error}`));
  }

  private fail(reason: string): void {
    if (this.failure) return;
    this.failure = new Error(this.closing && this.pending.size === 0 ? `${SYSTEM_PYTHON} worker closed` : `${reason}\n${this.stderr}`);
    for (const waiter of this.pending.values()) waiter.reject(this.failure);
    this.pending.clear();
  }
}

/** Runs one call on the shared worker (starting it for the call if nobody holds it). */
export async function withPythonWorker<T>(use: (worker: PythonWorker) => Promise<T>): Promise<T> {
  const worker = PythonWorker.acquire();
  try {
    return await use(worker);
  } finally {
    await worker.release();
  }
}

/** Runs a test's own script under the shared worker: see PythonWorker.run. */
export function runPython(script: string, stdin = '', args: string[] = []): Promise<string> {
  return withPythonWorker((python) => python.run(script, stdin, args));
}
