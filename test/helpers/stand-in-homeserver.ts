// A loopback stand-in for a homeserver's client API: answers GET /_matrix/client/v3/account/whoami
// from a table of tokens, counting the calls, and can misbehave on purpose.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type TokenBehaviour =
  | { userId: string; isGuest?: boolean; deviceId?: string }
  | { status: number; body: unknown }
  /** Never answers (until the stand-in is closed). */
  | 'hang';

export interface StandInHomeserver {
  url: string;
  tokens: Map<string, TokenBehaviour>;
  /** whoami calls per token, and the user_id query parameter of the last one. */
  calls: Map<string, number>;
  lastUserIdParam?: string | null;
  /** Users its Synapse admin API (GET /_synapse/admin/v1/users/{userId}/admin) calls admins. */
  synapseAdmins: Set<string>;
  /** Tokens that GET /_synapse/admin/... accepts (besides the users' own); each call is counted in adminChecks. */
  adminApiTokens: Set<string>;
  adminChecks: number;
  lastAdminCheckToken?: string;
  close(): Promise<void>;
}

export async function startStandInHomeserver(tokens: Record<string, TokenBehaviour> = {}): Promise<StandInHomeserver> {
  const hanging = new Set<ServerResponse>();
  const state: StandInHomeserver = {
    url: '',
    tokens: new Map(Object.entries(tokens)),
    calls: new Map(),
    synapseAdmins: new Set(),
    adminApiTokens: new Set(),
    adminChecks: 0,
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const adminCheck = /^\/_synapse\/admin\/v1\/users\/([^/]+)\/admin$/.exec(url.pathname);
    if (req.method === 'GET' && adminCheck) {
      state.adminChecks++;
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      state.lastAdminCheckToken = bearer;
      if (!state.tokens.has(bearer) && !state.adminApiTokens.has(bearer)) return json(res, 401, { errcode: 'M_UNKNOWN_TOKEN', error: 'Unknown token' });
      return json(res, 200, { admin: state.synapseAdmins.has(decodeURIComponent(adminCheck[1]!)) });
    }
    if (req.method !== 'GET' || url.pathname !== '/_matrix/client/v3/account/whoami') {
      return json(res, 404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
    }
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined) return json(res, 401, { errcode: 'M_MISSING_TOKEN', error: 'Missing access token' });
    state.calls.set(token, (state.calls.get(token) ?? 0) + 1);
    state.lastUserIdParam = url.searchParams.get('user_id');
    const behaviour = state.tokens.get(token);
    if (behaviour === undefined) return json(res, 401, { errcode: 'M_UNKNOWN_TOKEN', error: 'Unknown token' });
    if (behaviour === 'hang') {
      hanging.add(res);
      return;
    }
    if ('status' in behaviour) return json(res, behaviour.status, behaviour.body);
    return json(res, 200, { user_id: behaviour.userId, is_guest: behaviour.isGuest ?? false, device_id: behaviour.deviceId ?? 'DEVICE' });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
