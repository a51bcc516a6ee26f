// What a provider gets wrong when putting a homeserver behind this service, checked from the outside the way
// other servers and clients will see it: its client API, the keys it publishes, and where discovery of its
// server name lands for the media paths. Each failure says what to change.
import { randomBytes } from 'node:crypto';
import got from 'got';
import type { HomeserverConfig } from '../config/config.js';
import type { ActiveSigningKey } from '../keys/signing-key-store.js';
import { SCOPED_SERVER_KEYS_PATH, SERVER_KEYS_PATH } from '../keys/server-keys.js';
import { REQUESTS_SCOPE } from '../matrix/x-matrix.js';
import { errcodeOf, readErrorBody, type FederationClient, type SigningKeySource } from './client.js';

/** Every answer of this service carries it, so a check can tell this service from whatever else answered. */
export const SERVED_BY_HEADER = 'x-media-repo';
export const SERVED_BY = 'matrix-media-repo-ts';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  homeserver: string;
  check: string;
  status: CheckStatus;
  /** What was found; for warn and fail, also what to change. */
  detail: string;
}

export interface HomeserverCheckDeps {
  federation: Pick<FederationClient, 'get' | 'fetchServerKeysJson'>;
  signingKeys: SigningKeySource;
  timeoutMs: number;
}

export async function checkHomeserver(hs: HomeserverConfig, deps: HomeserverCheckDeps): Promise<CheckResult[]> {
  const result = (check: string, status: CheckStatus, detail: string): CheckResult => ({ homeserver: hs.name, check, status, detail });
  const results = [result('client API', ...(await checkClientApi(hs, deps.timeoutMs)))];
  let key: ActiveSigningKey | undefined;
  try {
    key = await deps.signingKeys.activeKey(hs.name);
  } catch (error) {
    results.push(result('signing key', 'fail', `${messageOf(error)}: fix signingKeyPath`));
  }
  if (key) results.push(result('signing key', 'ok', `${key.keyId} ${key.publicKey}`));
  else if (!results.some((r) => r.check === 'signing key')) {
    results.push(result('signing key', 'fail', 'none: remote media is fetched unauthenticated only; make one with generate_signing_key and set signingKeyPath'));
  }
  if (key) {
    const [v2, scoped] = await Promise.all([publishedKey(deps, hs.name, SERVER_KEYS_PATH, key, false), publishedKey(deps, hs.name, SCOPED_SERVER_KEYS_PATH, key, true)]);
    // One publication is enough to be trusted; the other only widens who accepts the requests.
    const either = v2.published || scoped.published;
    const publishFix = (path: string, entry: object) => `publish ${JSON.stringify({ [key.keyId]: entry })} in verify_keys at https://${hs.name}${path} (media-repo keys list prints it)`;
    results.push(result('key published (v2)', v2.published ? 'ok' : either ? 'warn' : 'fail',
      v2.published ? v2.detail : `${v2.detail}: servers without MSC4100 refuse its requests; ${publishFix(SERVER_KEYS_PATH, { key: key.publicKey })}`));
    results.push(result('key published (MSC4100)', scoped.published ? 'ok' : either ? 'warn' : 'fail',
      scoped.published ? scoped.detail : `${scoped.detail}: ${publishFix(SCOPED_SERVER_KEYS_PATH, { key: key.publicKey, scope: [REQUESTS_SCOPE] })}`));
  }
  const probe = `/_matrix/federation/v1/media/download/doctor-${randomBytes(9).toString('base64url')}`;
  results.push(result('federation media route', ...(await checkRoute(deps, hs, probe, key))));
  results.push(result('client media route', ...(await checkRoute(deps, hs, '/_matrix/client/v1/media/config', undefined))));
  return results;
}

async function checkClientApi(hs: HomeserverConfig, timeoutMs: number): Promise<[CheckStatus, string]> {
  if (hs.clientApi === undefined) return ['skip', 'no clientApi: only staticAccessTokens authenticate'];
  const url = `${hs.clientApi}/_matrix/client/v3/account/whoami`;
  const fix = 'set clientApi to where the homeserver answers /_matrix/client (e.g. http://127.0.0.1:8008)';
  try {
    const response = await got.get(url, { timeout: { request: timeoutMs }, retry: { limit: 0 }, throwHttpErrors: false, followRedirect: false, responseType: 'text' });
    const errcode = errcodeOf(parseJson(response.body));
    if (response.statusCode === 401 && (errcode === 'M_MISSING_TOKEN' || errcode === 'M_UNKNOWN_TOKEN')) return ['ok', `${hs.clientApi} answers /account/whoami`];
    return ['fail', `${url} answered ${response.statusCode}${errcode ? ` ${errcode}` : ''}, not a Matrix client API: ${fix}`];
  } catch (error) {
    return ['fail', `${url}: ${messageOf(error)}: ${fix}`];
  }
}

async function publishedKey(deps: HomeserverCheckDeps, serverName: string, path: string, key: ActiveSigningKey, needsScope: boolean): Promise<{ published: boolean; detail: string }> {
  let json: unknown;
  try {
    json = await deps.federation.fetchServerKeysJson(serverName, path);
  } catch (error) {
    return { published: false, detail: `${path}: ${messageOf(error)}` };
  }
  const entry = (json as { verify_keys?: Record<string, { key?: unknown; scope?: unknown }> }).verify_keys?.[key.keyId];
  if (entry === undefined) return { published: false, detail: `${path} does not list ${key.keyId}` };
  if (entry.key !== key.publicKey) return { published: false, detail: `${path} lists ${key.keyId} with another public key` };
  if (needsScope && !(Array.isArray(entry.scope) && entry.scope.includes(REQUESTS_SCOPE))) {
    return { published: false, detail: `${path} lists ${key.keyId} without the ${REQUESTS_SCOPE} scope` };
  }
  return { published: true, detail: `${path} lists ${key.keyId}` };
}

/** A request to the homeserver's own name, through discovery: it must reach this service (signed, when `key`, and accepted). */
async function checkRoute(deps: HomeserverCheckDeps, hs: HomeserverConfig, path: string, key: ActiveSigningKey | undefined): Promise<[CheckStatus, string]> {
  const routeFix = `route ${path.split('/').slice(0, 5).join('/')}/ of ${hs.name} (as found by server discovery) to this service in the reverse proxy`;
  let status: number;
  let servedBy: boolean;
  let errcode: string | undefined;
  try {
    const response = await deps.federation.get(hs.name, path, { signed: key !== undefined, origin: hs.name, timeoutMs: deps.timeoutMs });
    status = response.status;
    servedBy = response.headers[SERVED_BY_HEADER] === SERVED_BY;
    errcode = errcodeOf((await readErrorBody(response)).json);
    response.body.destroy();
  } catch (error) {
    return ['fail', `${hs.name}${path}: ${messageOf(error)}: fix server discovery of ${hs.name} (.well-known/matrix/server, SRV) or ${routeFix}`];
  }
  const answer = `${status}${errcode ? ` ${errcode}` : ''}`;
  if (!servedBy) return ['fail', `answered ${answer} by something other than this service: ${routeFix}`];
  if (status === 401 || status === 403) {
    if (key) return ['fail', `this service refused the homeserver's own signature (${answer}): publish the signing key (see the key rows)`];
    return ['ok', `reaches this service (${answer} to a request without credentials, as expected)`];
  }
  if (status === 200 || (status === 404 && errcode === 'M_NOT_FOUND')) return ['ok', `reaches this service (${answer})`];
  return ['fail', `this service answered ${answer}`];
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}
