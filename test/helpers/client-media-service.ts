// Client media API test bed: the service hosting a.example and b.example, stand-in homeservers for their tokens, alice's client.
import { createClient, type MatrixClient } from 'matrix-js-sdk';
import { getHttpUriForMxc } from 'matrix-js-sdk/lib/content-repo.js';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';
import type { RunningService } from '../../src/service.js';
import { rawRequest } from './raw-http.js';
import { startTestService } from './service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from './stand-in-homeserver.js';

export const MAX_UPLOAD = 64 * 1024;

export let hsA: StandInHomeserver;
export let hsB: StandInHomeserver;
export let service: RunningService;
export let alice: MatrixClient;

/**
 * Starts the stand-in homeservers, the service (a.example, reached as 127.0.0.1, and b.example) and alice's
 * matrix-js-sdk client before the calling describe's tests, and stops them after. The exported `let` bindings are live (ESM), so test files read them as if they were their own variables.
 */
export function useClientMediaService(): void {
  beforeAll(async () => {
    sdkLogger.setLevel('warn');
    hsA = await startStandInHomeserver({
      'tok-alice': { userId: '@alice:a.example' },
      'tok-guest': { userId: '@guest:a.example', isGuest: true },
      'tok-soft': { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'Soft logged out', soft_logout: true } },
      'tok-broken': { status: 500, body: { errcode: 'M_UNKNOWN', error: 'oops' } },
    });
    hsB = await startStandInHomeserver({ 'tok-carol': { userId: '@carol:b.example' } });
    service = await startTestService({
      homeservers: [
        // Requests to http://127.0.0.1:<port> carry Host 127.0.0.1, which names a.example.
        { name: 'a.example', clientApi: hsA.url, hostnames: ['127.0.0.1'], maxUploadBytes: MAX_UPLOAD },
        { name: 'b.example', clientApi: hsB.url },
      ],
      media: { legacyFreezeAt: null },
    });
    alice = createClient({ baseUrl: service.url, accessToken: 'tok-alice', userId: '@alice:a.example', useAuthorizationHeader: true });
  });
  afterAll(async () => {
    alice.stopClient();
    await service.close();
    await hsA.close();
    await hsB.close();
  });
}

/** Authorization header with a bearer token (alice's by default). */
export const authed = (token = 'tok-alice') => ({ authorization: `Bearer ${token}` });
/** matrix-js-sdk's authenticated download URL of `mxc` on the service. */
export const authedUrl = (mxc: string) => getHttpUriForMxc(service.url, mxc, undefined, undefined, undefined, false, true, true);
/** Uploads `body` as alice and returns its mxc URI. */
export const upload = async (body: Buffer, query = '', headers: Record<string, string> = { 'content-type': 'application/octet-stream' }) => {
  const res = await rawRequest(`${service.url}/_matrix/media/v3/upload${query}`, { method: 'POST', headers: { ...authed(), ...headers }, body });
  expect(res.status).toBe(200);
  return String(res.json().content_uri);
};
