import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, ConfigError, loadConfigFile, readSecret } from '../../src/config/config.js';

const dir = mkdtempSync(join(tmpdir(), 'config-test-'));

function writeConfig(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function loadError(text: string): string {
  const file = writeConfig(`c${Math.random()}.yaml`, text);
  try {
    loadConfigFile(file);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message.startsWith(file)).toBe(true);
    return (error as Error).message.slice(file.length);
  }
  throw new Error('config was accepted');
}

describe('config', () => {
  test('the documented example loads and every homeserver is usable', () => {
    const config = loadConfigFile('config.example.yaml');
    expect(config.homeservers.length).toBeGreaterThan(0);
    for (const hs of config.homeservers) expect(hs.clientApi).toMatch(/^https?:\/\//);
  });

  test('the values the example shows are the defaults', () => {
    const { homeservers, ...example } = loadConfigFile('config.example.yaml');
    const { homeservers: none, ...defaults } = buildConfig({}, 'config.example.yaml');
    expect(none).toEqual([]);
    expect(homeservers[0]!.maxUploadBytes).toBe(defaults.media.maxUploadBytes);
    expect(example).toEqual(defaults);
  });

  test('defaults fill an empty file and relative paths anchor at the file', () => {
    const config = loadConfigFile(writeConfig('empty.yaml', ''));
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8000 });
    expect(config.dataDir).toBe(join(dir, 'data'));
    expect(config.datastores).toEqual([
      { id: 'default', type: 'file', forKinds: ['local_media', 'remote_media', 'thumbnails'], opts: { path: join(dir, 'data', 'media') } },
    ]);
    expect(config.media.thumbnails.sizes).toContainEqual({ width: 96, height: 96, method: 'crop' });
  });

  test('homeserver paths resolve against the config file folder', () => {
    const config = loadConfigFile(writeConfig('hs.yaml', `
homeservers:
  - name: example.org
    clientApi: http://127.0.0.1:8008/
    signingKeyPath: keys/example.key
    maxUploadBytes: 5
`));
    expect(config.homeservers[0]).toMatchObject({
      name: 'example.org', clientApi: 'http://127.0.0.1:8008', signingKeyPath: join(dir, 'keys/example.key'), maxUploadBytes: 5,
    });
  });

  test('an unknown key is named with its path', () => {
    expect(loadError('listen:\n  hots: 1.2.3.4\n')).toBe(' at /listen/hots: unknown key');
    expect(loadError('homeservers:\n  - name: a.org\n    clientApi: http://a\n    signingkey: x\n')).toBe(' at /homeservers/0/signingkey: unknown key');
  });

  test('wrong types and values are named with their path and reason', () => {
    expect(loadError('listen:\n  port: "80"\n')).toBe(' at /listen/port: must be integer');
    expect(loadError('logLevel: loud\n')).toMatch(/^ at \/logLevel: must be one of fatal, error/);
    expect(loadError('homeservers:\n  - name: a.org\n')).toBe(' at /homeservers/0: needs clientApi (to check access tokens) or staticAccessTokens, or nobody can use it');
    expect(loadError('homeservers:\n  - name: "a/b"\n    clientApi: http://a\n')).toBe(' at /homeservers/0/name: "a/b" is not a valid Matrix server name');
    expect(loadError('media:\n  legacyFreezeAt: yesterday\n')).toMatch(/^ at \/media\/legacyFreezeAt: "yesterday" is not a date/);
    expect(loadError('masterKey: {file: a, env: B}\n')).toBe(' at /masterKey: must be a string, {file: PATH} or {env: NAME}');
  });

  test('admin settings: user IDs, retention days and secrets are checked; secret files anchor at the file', () => {
    expect(loadError('admins: [root]\n')).toMatch(/^ at \/admins\/0: must match pattern/);
    expect(loadError('retention: {remoteMediaDays: 0}\n')).toBe(' at /retention/remoteMediaDays: must be >= 1');
    expect(loadError('homeservers:\n  - {name: a.org, clientApi: "http://a", adminApiKind: dendrite}\n')).toMatch(/^ at \/homeservers\/0\/adminApiKind: must be one of none, synapse/);
    const config = loadConfigFile(writeConfig('admin.yaml', `
sharedSecretAuth: {token: {file: admin.token}}
homeservers:
  - {name: a.org, clientApi: "http://a", admins: ["@amy:a.org"], adminApiToken: {file: keys/a.token}, retention: {remoteMediaDays: 7}}
`));
    expect(config.sharedSecretAuth.token).toEqual({ file: join(dir, 'admin.token') });
    expect(config.homeservers[0]).toMatchObject({ admins: ['@amy:a.org'], adminApiKind: 'none', adminApiToken: { file: join(dir, 'keys/a.token') }, retention: { remoteMediaDays: 7 } });
    expect(config.retention).toEqual({ remoteMediaDays: null, localMediaDays: null, intervalMs: 3_600_000 });
  });

  test('the same host for two homeservers is refused', () => {
    expect(loadError(`homeservers:
  - {name: a.org, clientApi: "http://a"}
  - {name: b.org, clientApi: "http://b", hostnames: [a.org]}
`)).toBe(' at /homeservers/1: "a.org" is already used by homeserver 0');
  });

  test('datastores: all expands to every kind and paths anchor at the file', () => {
    const config = loadConfigFile(writeConfig('ds.yaml', `
dataDir: /var/lib/elsewhere
datastores:
  - {id: local, type: file, forKinds: [local_media, thumbnails], opts: {path: ./media/local}}
  - {id: remote_cache-1, type: file, forKinds: [all], opts: {path: /srv/remote}}
`));
    expect(config.datastores).toEqual([
      { id: 'local', type: 'file', forKinds: ['local_media', 'thumbnails'], opts: { path: join(dir, 'media/local') } },
      { id: 'remote_cache-1', type: 'file', forKinds: ['local_media', 'remote_media', 'thumbnails'], opts: { path: '/srv/remote' } },
    ]);
  });

  test('the default datastore follows dataDir', () => {
    expect(buildConfig({ dataDir: 'state' }, join(dir, 'x.yaml')).datastores[0]!.opts).toEqual({ path: join(dir, 'state', 'media') });
  });

  test('bad datastore lists are named with their path and reason', () => {
    const store = (id: string, kinds: string, type = 'file') => `  - {id: ${id}, type: ${type}, forKinds: [${kinds}], opts: {path: m}}\n`;
    expect(loadError(`datastores:\n${store('a', 'all')}${store('a', 'thumbnails')}`)).toBe(' at /datastores/1/id: "a" is already used by datastore 0');
    expect(loadError(`datastores:\n${store('a', 'local_media')}${store('b', 'remote_media')}`))
      .toBe(' at /datastores: no datastore takes thumbnails for every homeserver (add it to a forKinds without forHomeservers, or use all)');
    expect(loadError('datastores: []\n')).toMatch(/^ at \/datastores: no datastore takes local_media, remote_media, thumbnails/);
    expect(loadError(`datastores:\n${store('a', 'all', 'nfs')}`)).toBe(' at /datastores/0/type: must be one of file, s3');
    // opts follow the type: a file store's path is no S3 option.
    expect(loadError(`datastores:\n${store('a', 'all', 's3')}`)).toMatch(/^ at \/datastores\/0\/opts(\/path: unknown key|: must have required property 'bucketName')$/);
    expect(loadError(`datastores:\n${store('a', 'everything')}`)).toBe(' at /datastores/0/forKinds/0: must be one of all, local_media, remote_media, thumbnails');
    expect(loadError(`datastores:\n${store('A B', 'all')}`)).toMatch(/^ at \/datastores\/0\/id: must match pattern/);
    expect(loadError('datastores:\n  - {id: a, type: file, forKinds: [all]}\n')).toBe(" at /datastores/0: must have required property 'opts'");
    expect(loadError('datastores:\n  - {id: a, type: file, forKinds: [all], opts: {path: m, bucket: b}}\n')).toBe(' at /datastores/0/opts/bucket: unknown key');
  });

  test('S3 datastores: defaults, secrets anchored at the file, per-homeserver choice checked', () => {
    const config = loadConfigFile(writeConfig('s3.yaml', `
homeservers: [{name: a.example, clientApi: "http://127.0.0.1:1"}]
datastores:
  - {id: files, type: file, forKinds: [all], opts: {path: m}}
  - id: bucket
    type: s3
    forKinds: [local_media]
    forHomeservers: [a.example]
    opts: {bucketName: media, endpoint: "http://127.0.0.1:9000", accessKeyId: {env: KEY_ID}, accessSecret: {file: s3.secret}}
`));
    expect(config.datastores[1]).toEqual({
      id: 'bucket', type: 's3', forKinds: ['local_media'], forHomeservers: ['a.example'],
      opts: {
        bucketName: 'media', endpoint: 'http://127.0.0.1:9000', accessKeyId: { env: 'KEY_ID' }, accessSecret: { file: join(dir, 's3.secret') },
        region: 'us-east-1', prefix: '', forcePathStyle: false, redirect: 'off', presignExpirySeconds: 300, maxAttempts: 3, timeoutMs: 30000,
      },
    });
    const s3 = (opts: string, extra = '') => `datastores:\n  - {id: f, type: file, forKinds: [all], opts: {path: m}}\n  - {id: s, type: s3, forKinds: [all]${extra}, opts: {bucketName: b${opts}}}\n`;
    expect(loadError(s3(', accessKeyId: k'))).toBe(" at /datastores/1/opts: accessKeyId and accessSecret go together (or leave both unset for the AWS SDK's own credentials)");
    expect(loadError(s3(', redirect: publicBaseUrl'))).toBe(' at /datastores/1/opts/publicBaseUrl: redirect: publicBaseUrl needs a publicBaseUrl');
    expect(loadError(s3(', redirect: always'))).toBe(' at /datastores/1/opts/redirect: must be one of off, presigned, publicBaseUrl');
    expect(loadError(s3(', prefix: /abs/'))).toMatch(/^ at \/datastores\/1\/opts\/prefix: must match pattern/);
    expect(loadError(s3(', kmsKeyId: k'))).toBe(' at /datastores/1/opts/kmsKeyId: kmsKeyId needs sse: aws:kms');
    expect(loadError(s3('', ', forHomeservers: [nobody.example]'))).toBe(' at /datastores/1/forHomeservers: "nobody.example" is not a configured homeserver');
  });

  test('the old storage key is gone', () => {
    expect(loadError('storage:\n  filesystem:\n    path: m\n')).toBe(' at /storage: unknown key');
  });

  test('defaults land in a copy: the object passed in is not changed', () => {
    const raw = { federation: {} };
    buildConfig(raw);
    expect(raw).toEqual({ federation: {} });
  });

  test('broken YAML names the line', () => {
    expect(loadError('listen:\n  host: [\n')).toMatch(/^ at line \d+, column \d+: invalid YAML/);
    expect(loadError('logLevel: info\nlogLevel: warn\n')).toMatch(/^ at line 2, column 1: invalid YAML/);
    expect(loadError('logLevel: *level\n')).toMatch(/^ at line 1, column \d+: invalid YAML: unidentified alias "level"/);
  });

  test('nested aliases that would expand to billions of values are refused before validation walks them', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
    expect(loadError(`${levels.join('\n')}\n`)).toBe(': invalid YAML: more than 1000000 values once aliases are expanded (or an alias inside its own anchor)');
  });

  test('a list of 300,000 values is checked like any other, without overflowing a call', () => {
    expect(loadError(`logLevel: [${Array(300_000).fill('1').join(',')}]\n`)).toMatch(/^ at \/logLevel: must be one of/);
  });

  test('an alias inside its own anchor is refused, not followed until the stack overflows', () => {
    expect(loadError('logLevel: &a [*a]\n')).toMatch(/^: invalid YAML: more than 1000000 values/);
    expect(loadError('media: &m {thumbnails: *m}\n')).toMatch(/^: invalid YAML: more than 1000000 values/);
  });

  test('YAML 1.2 core schema: yes is a string, 017 is seventeen, a date stays text', () => {
    expect(loadError('logLevel: yes\n')).toMatch(/^ at \/logLevel: must be one of/);
    const config = loadConfigFile(writeConfig('core.yaml', 'media: {maxUploadBytes: 017, legacyFreezeAt: 2020-01-01T00:00:00Z}\n'));
    expect(config.media.maxUploadBytes).toBe(17);
    expect(config.media.legacyFreezeAt).toEqual(new Date('2020-01-01T00:00:00Z'));
  });

  test('a missing file is named', () => {
    expect(() => loadConfigFile(join(dir, 'nope.yaml'))).toThrow(`${join(dir, 'nope.yaml')}: cannot read the file (ENOENT)`);
  });

  test('secrets come from files and environment variables, and errors do not show them', () => {
    const file = writeConfig('secret.txt', 'postgres://u:hunter2@h/db\n');
    const config = buildConfig({ database: { url: { file: 'secret.txt' } } }, join(dir, 'x.yaml'));
    expect(readSecret(config.database.url!, 'database.url')).toBe('postgres://u:hunter2@h/db');
    expect(file).toContain(dir);
    process.env.TEST_SECRET_VALUE = 'from-env';
    expect(readSecret({ env: 'TEST_SECRET_VALUE' }, 'x')).toBe('from-env');
    expect(() => readSecret({ env: 'TEST_SECRET_UNSET' }, 'masterKey')).toThrow('masterKey: environment variable TEST_SECRET_UNSET is not set');
    expect(() => readSecret({ file: join(dir, 'none') }, 'masterKey')).toThrow(/masterKey: cannot read .*none \(ENOENT\)/);
  });
});
