// auth.allowQueryStringToken: false: a token in ?access_token= is not a token, and the homeserver is never asked about it.
import type { RunningService } from '../../src/service.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';
import { startStandInHomeserver, type StandInHomeserver } from '../helpers/stand-in-homeserver.js';

let hs: StandInHomeserver;
let service: RunningService;

beforeAll(async () => {
  hs = await startStandInHomeserver({ 'tok-alice': { userId: '@alice:a.example' } });
  service = await startTestService({
    homeservers: [{ name: 'a.example', clientApi: hs.url }],
    auth: { allowQueryStringToken: false },
  });
});
afterAll(async () => {
  await service.close();
  await hs.close();
});

test('?access_token= is refused as a missing token, and not sent to the homeserver', async () => {
  for (const path of ['/_matrix/client/v1/media/config', '/_matrix/media/v3/config']) {
    const res = await rawRequest(`${service.url}${path}?access_token=tok-alice`, { headers: { host: 'a.example' } });
    expect([res.status, res.json()]).toEqual([401, { errcode: 'M_MISSING_TOKEN', error: 'Missing access token' }]);
  }
  expect(hs.calls.get('tok-alice')).toBeUndefined();
});

test('the same token in the Authorization header is accepted', async () => {
  const res = await rawRequest(`${service.url}/_matrix/client/v1/media/config`, { headers: { host: 'a.example', authorization: 'Bearer tok-alice' } });
  expect(res.status).toBe(200);
  expect(hs.calls.get('tok-alice')).toBe(1);
});
