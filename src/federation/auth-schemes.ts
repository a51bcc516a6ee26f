// Which Authorization scheme each hosted homeserver's requests carry, from what that homeserver publishes
// (read at start, then every SCHEME_REFRESH_MS, through discovery like any other server):
// - our key in /_matrix/key/v2/server verify_keys (a key file combined into the homeserver's, as for
//   matrix-media-repo): X-Matrix, which every peer knows; plus X-MSC4100-Scoped in a second header where
//   the MSC4100 endpoint lists the key with m.requests (peers ignore schemes they do not know);
// - our key only at the MSC4100 endpoint, or not found: X-MSC4100-Scoped first, X-Matrix after an auth refusal.
// The stable X-Matrix-Scoped is never sent: Synapse reads any header starting "X-Matrix" as X-Matrix and
// refuses the whole request when it cannot parse it.
import { encodeBase64 } from '../matrix/base64.js';
import { REQUESTS_SCOPE } from '../matrix/x-matrix.js';
import { parseServerKeys, SCOPED_SERVER_KEYS_PATH, SERVER_KEYS_PATH, type ServerKeySet } from '../keys/server-keys.js';
import type { Logger } from '../log.js';
import type { AuthScheme, AuthSchemeSource } from './client.js';

export const SCHEME_REFRESH_MS = 3600_000;
/** Homeservers looked at at once: thousands of hosted homeservers must not mean thousands of fetches at start. */
const LOOKS_AT_ONCE = 8;
/** The first request of a homeserver waits this long at most for the first look at what it publishes. */
const FIRST_LOOK_WAIT_MS = 3000;

export interface SchemeChoice {
  scheme: AuthScheme;
  reason: string;
}

interface OurKey {
  keyId: string;
  publicKey: string;
  scope: readonly string[];
}

/** What `key`'s homeserver publishes decides; a fetch that failed is an Error. */
export function chooseScheme(key: OurKey, v2: ServerKeySet | Error, scoped: ServerKeySet | Error): SchemeChoice {
  if (!key.scope.includes(REQUESTS_SCOPE)) return { scheme: 'x-matrix', reason: `${key.keyId} has no ${REQUESTS_SCOPE} scope` };
  const listed = (set: ServerKeySet | Error) => (set instanceof Error ? undefined : set.keys.find((k) =>
    k.keyId === key.keyId && k.expiredTs === null && encodeBase64(k.publicKey) === key.publicKey));
  const inV2 = listed(v2) !== undefined;
  const inScoped = listed(scoped)?.scopes?.includes(REQUESTS_SCOPE) === true;
  if (inV2 && inScoped) {
    return { scheme: 'x-matrix+scoped', reason: `${key.keyId} is in ${SERVER_KEYS_PATH} and has ${REQUESTS_SCOPE} at ${SCOPED_SERVER_KEYS_PATH}` };
  }
  if (inV2) return { scheme: 'x-matrix', reason: `${key.keyId} is in ${SERVER_KEYS_PATH} (not with ${REQUESTS_SCOPE} at ${SCOPED_SERVER_KEYS_PATH})` };
  const downgrade = 'X-MSC4100-Scoped first, X-Matrix after an auth refusal';
  if (inScoped) return { scheme: 'scoped-first', reason: `${key.keyId} is only at ${SCOPED_SERVER_KEYS_PATH}: ${downgrade}` };
  const why = (set: ServerKeySet | Error) => (set instanceof Error ? set.message : 'not listed');
  return { scheme: 'scoped-first', reason: `${key.keyId} not found published (${SERVER_KEYS_PATH}: ${why(v2)}; ${SCOPED_SERVER_KEYS_PATH}: ${why(scoped)}): ${downgrade}` };
}

export interface AuthSchemesOptions {
  homeservers: readonly string[];
  signingKeys: { activeKey(serverName: string): Promise<OurKey | undefined> };
  /** GET /_matrix/key/... on a server, unsigned, through discovery. */
  fetchKeys(serverName: string, path: string): Promise<unknown>;
  log: Logger;
  refreshMs?: number;
  now?: () => number;
}

export class AuthSchemes implements AuthSchemeSource {
  private readonly choices = new Map<string, SchemeChoice>();
  private readonly firstLooks = new Map<string, Promise<void>>();
  private readonly looked = new Set<string>();
  private readonly hosted: ReadonlySet<string>;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: AuthSchemesOptions) {
    this.hosted = new Set(options.homeservers);
  }

  /** Looks now (logging each homeserver's scheme and why), then every refreshMs. */
  start(): Promise<void> {
    this.timer ??= setInterval(() => void this.refreshAll(), this.options.refreshMs ?? SCHEME_REFRESH_MS).unref();
    return this.refreshAll();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async schemeFor(origin: string): Promise<AuthScheme | undefined> {
    // A homeserver whose turn in the first round has not come yet is looked at now.
    if (!this.firstLooks.has(origin) && this.hosted.has(origin) && this.timer !== undefined) void this.refresh(origin);
    const first = this.firstLooks.get(origin);
    if (first && !this.looked.has(origin)) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([first, new Promise((resolve) => (timer = setTimeout(resolve, FIRST_LOOK_WAIT_MS)))]);
      clearTimeout(timer);
    }
    return this.choices.get(origin)?.scheme;
  }

  /** The scheme and why, for `keys list`; undefined before the first look or without a key. */
  describe(origin: string): SchemeChoice | undefined {
    return this.choices.get(origin);
  }

  /** Every homeserver, LOOKS_AT_ONCE at a time; one whose first look a request already started is not looked at twice. */
  async refreshAll(): Promise<void> {
    const firstRound = this.firstLooks.size === 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < this.options.homeservers.length; i = next++) {
        const homeserver = this.options.homeservers[i]!;
        if (!firstRound || !this.firstLooks.has(homeserver)) await this.refresh(homeserver);
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOOKS_AT_ONCE, this.options.homeservers.length) }, worker));
  }

  refresh(homeserver: string): Promise<void> {
    const look = this.look(homeserver);
    if (!this.firstLooks.has(homeserver)) this.firstLooks.set(homeserver, look.finally(() => this.looked.add(homeserver)));
    return look;
  }

  private async look(homeserver: string): Promise<void> {
    const { log } = this.options;
    try {
      const key = await this.options.signingKeys.activeKey(homeserver);
      if (!key) return;
      const [v2, scoped] = await Promise.all([this.fetchSet(homeserver, SERVER_KEYS_PATH, false), this.fetchSet(homeserver, SCOPED_SERVER_KEYS_PATH, true)]);
      const previous = this.choices.get(homeserver);
      // Both unreadable says nothing new about the homeserver: the last answer stands.
      if (previous && v2 instanceof Error && scoped instanceof Error) return;
      const choice = chooseScheme(key, v2, scoped);
      this.choices.set(homeserver, choice);
      if (previous?.scheme !== choice.scheme || previous.reason !== choice.reason) log.info({ homeserver, scheme: choice.scheme, reason: choice.reason }, 'outbound auth scheme');
    } catch (error) {
      log.warn({ homeserver, err: (error as Error).message }, 'could not choose the outbound auth scheme');
    }
  }

  private async fetchSet(homeserver: string, path: string, scoped: boolean): Promise<ServerKeySet | Error> {
    try {
      const json = await this.options.fetchKeys(homeserver, path);
      return parseServerKeys(json, { serverName: homeserver, scoped, now: (this.options.now ?? Date.now)() });
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  }
}
