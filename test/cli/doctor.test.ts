// media-repo doctor against loopback homeservers, each set up right or wrong in one way, all behind one
// running service: every planted misconfiguration is found, on its own homeserver only.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { doctor } from '../../src/cli/doctor.js';
import { run } from '../../src/cli/media-repo.js';
import type { CheckResult } from '../../src/federation/homeserver-checks.js';
import { formatKeyFile, generateSigningKey, keyId } from '../../src/keys/key-files.js';
import { encodeBase64 } from '../../src/matrix/base64.js';
import { publicKeyFromSeed } from '../../src/matrix/ed25519.js';
import type { RunningService } from '../../src/service.js';
import { startHomeserverFront, type FrontSetup, type HomeserverFront, type PublishedKey } from '../helpers/homeserver-front.js';
import { startTestService } from '../helpers/service-under-test.js';
import { freePort } from '../../bench/media-processes.js';

const dir = mkdtempSync(join(tmpdir(), 'doctor-'));

/** A key file for `name`, and its entry as verify_keys publishes it. */
function keyFor(name: string): { file: string; published: PublishedKey; scoped: PublishedKey } {
  const key = generateSigningKey();
  const file = join(dir, `${name}.key`);
  writeFileSync(file, formatKeyFile([key], 'synapse'));
  const published = { keyId: keyId(key), key: encodeBase64(publicKeyFromSeed(key.seed)) };
  return { file, published, scoped: { ...published, scope: ['m.requests'] } };
}

function collect(): { io: { stdout: PassThrough; stderr: PassThrough }; text(): string } {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  return { io: { stdout, stderr: new PassThrough() }, text: () => Buffer.concat(chunks).toString() };
}

describe('media-repo doctor', () => {
  const fronts: HomeserverFront[] = [];
  const setups: FrontSetup[] = [];
  let service: RunningService;
  let results: CheckResult[];
  let ok: boolean;
  let table: string;
  let right: { published: PublishedKey; url: string };

  beforeAll(async () => {
    const keys = Object.fromEntries(['right', 'v2only', 'scopedonly', 'unpublished', 'unscoped', 'wrongkey', 'unrouted', 'badclient', 'unreachable']
      .map((name) => [name, keyFor(name)]));
    const other = keyFor('other');
    const plan: Record<string, Omit<FrontSetup, 'serverName'> & { routed: boolean }> = {
      right: { v2Keys: [keys.right!.published], scopedKeys: [keys.right!.scoped], routed: true },
      v2only: { v2Keys: [keys.v2only!.published], scopedKeys: [], routed: true },
      scopedonly: { v2Keys: [], scopedKeys: [keys.scopedonly!.scoped], routed: true },
      unpublished: { v2Keys: [], scopedKeys: [], routed: true },
      unscoped: { v2Keys: [], scopedKeys: [keys.unscoped!.published], routed: true },
      wrongkey: { v2Keys: [{ ...keys.wrongkey!.published, key: other.published.key }], scopedKeys: [], routed: true },
      unrouted: { v2Keys: [keys.unrouted!.published], scopedKeys: [keys.unrouted!.scoped], routed: false },
      badclient: { v2Keys: [keys.badclient!.published], scopedKeys: [keys.badclient!.scoped], routed: true },
      keyless: { v2Keys: [], scopedKeys: [], routed: true },
    };
    const homeservers: Record<string, unknown>[] = [];
    const tokens = join(dir, 'tokens');
    writeFileSync(tokens, 'doctor-static-token-0001 @admin:keyless.test\n', { mode: 0o600 });
    const overrides: Record<string, string> = {};
    for (const [name, { routed, ...published }] of Object.entries(plan)) {
      const setup: FrontSetup & { routed?: boolean } = { serverName: `${name}.test`, ...published, routed };
      const front = await startHomeserverFront(setup);
      fronts.push(front);
      setups.push(setup);
      overrides[setup.serverName] = front.url;
      // keyless has no clientApi either (static tokens only): that check is skipped.
      const auth = name === 'keyless' ? { staticAccessTokens: { file: tokens } } : { clientApi: front.url };
      homeservers.push({ name: setup.serverName, ...auth, ...(keys[name] ? { signingKeyPath: keys[name].file } : {}) });
      if (name === 'right') right = { published: keys.right!.published, url: front.url };
    }
    overrides['unreachable.test'] = `http://127.0.0.1:${await freePort()}`;
    homeservers.push({ name: 'unreachable.test', clientApi: overrides['unreachable.test'], signingKeyPath: keys.unreachable!.file });
    service = await startTestService({ homeservers, federation: { serverOverrides: overrides, requestTimeoutMs: 5000 } });
    for (const setup of setups as Array<FrontSetup & { routed?: boolean }>) if (setup.routed) setup.mediaRepoUrl = service.url;
    // badclient's clientApi is this service, which is no client API (and knows no homeserver by that Host).
    service.services.config.homeservers.find((hs) => hs.name === 'badclient.test')!.clientApi = service.url;

    const json = collect();
    ok = await doctor(service.services.config, json.io, { json: true });
    ({ checks: results } = JSON.parse(json.text()) as { checks: CheckResult[] });
    const text = collect();
    await doctor(service.services.config, text.io, { json: false });
    table = text.text();
  }, 120_000);
  afterAll(async () => {
    await service.close();
    await Promise.all(fronts.map((f) => f.close()));
  });

  const row = (homeserver: string, check: string) => {
    const found = results.find((r) => r.homeserver === homeserver && r.check === check);
    if (!found) throw new Error(`no ${check} row for ${homeserver}`);
    return found;
  };
  const statuses = (homeserver: string) => Object.fromEntries(results.filter((r) => r.homeserver === homeserver).map((r) => [r.check, r.status]));

  test('a homeserver set up right passes every check', () => {
    expect(statuses('right.test')).toEqual({
      'client API': 'ok', 'signing key': 'ok', 'key published (v2)': 'ok', 'key published (MSC4100)': 'ok',
      'federation media route': 'ok', 'client media route': 'ok',
    });
  });

  test('a key published at one endpoint only: that one passes, the other warns, and signed requests get through', () => {
    expect(statuses('v2only.test')).toMatchObject({ 'key published (v2)': 'ok', 'key published (MSC4100)': 'warn', 'federation media route': 'ok' });
    expect(row('v2only.test', 'key published (MSC4100)').detail).toContain('"scope":["m.requests"]');
    expect(statuses('scopedonly.test')).toMatchObject({ 'key published (v2)': 'warn', 'key published (MSC4100)': 'ok', 'federation media route': 'ok' });
  });

  test('an unpublished key fails both key checks and the signed request, saying what to publish', () => {
    expect(statuses('unpublished.test')).toMatchObject({ 'key published (v2)': 'fail', 'key published (MSC4100)': 'fail', 'federation media route': 'fail' });
    const v2 = row('unpublished.test', 'key published (v2)').detail;
    expect(v2).toMatch(/does not list ed25519:\w+: servers without MSC4100 refuse its requests; publish \{"ed25519:\w+":\{"key":"[A-Za-z0-9+/]{43}"\}\} in verify_keys at https:\/\/unpublished\.test\/_matrix\/key\/v2\/server/);
    expect(row('unpublished.test', 'federation media route').detail).toMatch(/refused the homeserver's own signature \(401 M_UNAUTHORIZED\): publish the signing key/);
  });

  test('a key without the m.requests scope, or with another public key, is not published', () => {
    expect(row('unscoped.test', 'key published (MSC4100)')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/without the m\.requests scope/) });
    expect(row('wrongkey.test', 'key published (v2)')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/with another public key/) });
  });

  test('media paths the reverse proxy does not send here fail, saying which route to add', () => {
    expect(row('unrouted.test', 'federation media route')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/^answered 404 M_NOT_FOUND by something other than this service: route \/_matrix\/federation\/v1\/media\/ of unrouted\.test/) });
    expect(row('unrouted.test', 'client media route')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/route \/_matrix\/client\/v1\/media\//) });
    expect(statuses('unrouted.test')).toMatchObject({ 'key published (v2)': 'ok', 'client API': 'ok' });
  });

  test('a clientApi that is no client API, a homeserver nothing answers for, and a missing signing key each fail', () => {
    expect(row('badclient.test', 'client API')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/answered 404 M_NOT_FOUND, not a Matrix client API: set clientApi/) });
    expect(statuses('badclient.test')).toMatchObject({ 'federation media route': 'ok', 'client media route': 'ok' });
    expect(statuses('unreachable.test')).toEqual({
      'client API': 'fail', 'signing key': 'ok', 'key published (v2)': 'fail', 'key published (MSC4100)': 'fail',
      'federation media route': 'fail', 'client media route': 'fail',
    });
    expect(row('unreachable.test', 'federation media route').detail).toMatch(/fix server discovery of unreachable\.test/);
    expect(row('keyless.test', 'signing key')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/generate_signing_key and set signingKeyPath/) });
    expect(row('keyless.test', 'federation media route').status).toBe('ok');
  });

  test('each passing check says what it found, and failures carry the underlying error', () => {
    const { keyId: id, key } = right.published;
    expect(row('right.test', 'signing key').detail).toBe(`${id} ${key}`);
    expect(row('right.test', 'key published (v2)').detail).toBe(`/_matrix/key/v2/server lists ${id}`);
    expect(row('right.test', 'client API').detail).toBe(`${right.url} answers /account/whoami`);
    expect(row('right.test', 'federation media route').detail).toBe('reaches this service (404 M_NOT_FOUND)');
    expect(row('unreachable.test', 'client API').detail).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/_matrix\/client\/v3\/account\/whoami: connect ECONNREFUSED 127\.0\.0\.1:\d+: set clientApi/);
    expect(row('unreachable.test', 'key published (v2)').detail).toMatch(/^\/_matrix\/key\/v2\/server: .*ECONNREFUSED.*: servers without MSC4100 refuse its requests/);
    expect(row('keyless.test', 'client API')).toMatchObject({ status: 'skip', detail: 'no clientApi: only staticAccessTokens authenticate' });
  });

  test('every answer of the service says it is this service', async () => {
    const response = await fetch(`${service.url}/_matrix/client/v1/media/config`);
    expect(response.headers.get('x-media-repo')).toBe('matrix-media-repo-ts');
  });

  test('the table has one row per check, the same as the JSON, and any failure fails the run', () => {
    expect(ok).toBe(false);
    const lines = table.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^HOMESERVER\s+CHECK\s+STATUS\s+DETAIL$/);
    expect(lines).toHaveLength(results.length + 1);
    expect(lines.find((l) => l.startsWith('unscoped.test') && l.includes('key published (MSC4100)'))).toMatch(/\bFAIL\s+\/_matrix\/key\/unstable/);
  });

  test('an unreadable master key and an unreachable database fail, and the command exits 1', async () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, [
      `masterKey: {file: ${join(dir, 'no-such-master.key')}}`,
      `database: {url: "postgres://media:hunter2@127.0.0.1:${await freePort()}/media"}`,
      'homeservers: []',
    ].join('\n'));
    const out = collect();
    const code = await run(['-config', file, 'doctor', '-json'], out.io);
    expect(code).toBe(1);
    const { checks } = JSON.parse(out.text()) as { checks: CheckResult[] };
    expect(checks.find((c) => c.check === 'master key')).toMatchObject({ status: 'fail', detail: expect.stringContaining('no-such-master.key (ENOENT): fix masterKey') });
    expect(checks.find((c) => c.check === 'database')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/^cannot reach the database at 127\.0\.0\.1:\d+\/media: ECONNREFUSED/) });
    expect(out.text()).not.toContain('hunter2');
  });
});
