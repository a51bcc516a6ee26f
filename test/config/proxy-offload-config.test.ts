// datastores[].opts.proxyOffload: off unless set, checked per mode, x-sendfile's folder defaulting to the datastore's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildConfig, ConfigError } from '../../src/config/config.js';

const FILE = '/etc/media-repo/config.yaml';
const withOffload = (proxyOffload: Record<string, unknown>) => buildConfig({
  datastores: [{ id: 'files', type: 'file', forKinds: ['all'], opts: { path: 'media', proxyOffload } }],
}, FILE).datastores[0]!.opts as { path: string; proxyOffload?: { internalPrefix: string } };
const errorOf = (proxyOffload: Record<string, unknown>) => {
  try {
    withOffload(proxyOffload);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message.slice(FILE.length);
  }
  throw new Error('accepted');
};

describe('proxyOffload config', () => {
  test('off unless set: the default datastore and a plain file datastore have none', () => {
    expect(buildConfig({}, FILE).datastores[0]!.opts).not.toHaveProperty('proxyOffload');
    expect(buildConfig({ datastores: [{ id: 'f', type: 'file', forKinds: ['all'], opts: { path: 'm' } }] }, FILE).datastores[0]!.opts).toEqual({ path: '/etc/media-repo/m' });
  });

  test('x-accel-redirect: defaults filled, the secret anchored at the file', () => {
    expect(withOffload({ mode: 'x-accel-redirect', internalPrefix: '/_media_internal/files', secureLink: { prefix: '/_media_signed/files', secret: { file: 'link.secret' } } })).toEqual({
      path: '/etc/media-repo/media',
      proxyOffload: {
        mode: 'x-accel-redirect', internalPrefix: '/_media_internal/files', minBytes: 1048576,
        secureLink: { prefix: '/_media_signed/files', secret: { file: join('/etc/media-repo', 'link.secret') }, expirySeconds: 300 },
      },
    });
  });

  test('x-sendfile names the datastore\'s own folder unless told where the proxy sees it', () => {
    expect(withOffload({ mode: 'x-sendfile', minBytes: 0 })).toEqual({ path: '/etc/media-repo/media', proxyOffload: { mode: 'x-sendfile', internalPrefix: '/etc/media-repo/media', minBytes: 0 } });
    expect(withOffload({ mode: 'x-sendfile', internalPrefix: '/srv/media' }).proxyOffload?.internalPrefix).toBe('/srv/media');
  });

  test('mistakes are named with their path and reason', () => {
    expect(errorOf({ mode: 'x-accel-redirect' })).toBe(' at /datastores/0/opts/proxyOffload/internalPrefix: x-accel-redirect needs the internal location that nginx maps to opts.path');
    expect(errorOf({ mode: 'x-sendfile', secureLink: { prefix: '/s', secret: 'x' } })).toBe(' at /datastores/0/opts/proxyOffload/secureLink: secureLink is checked by nginx: it needs mode x-accel-redirect');
    expect(errorOf({ mode: 'sendfile' })).toBe(' at /datastores/0/opts/proxyOffload/mode: must be one of x-accel-redirect, x-sendfile');
    expect(errorOf({ mode: 'x-accel-redirect', internalPrefix: '/internal/' })).toMatch(/^ at \/datastores\/0\/opts\/proxyOffload\/internalPrefix: must match pattern/);
    expect(errorOf({ mode: 'x-accel-redirect', internalPrefix: 'internal' })).toMatch(/^ at \/datastores\/0\/opts\/proxyOffload\/internalPrefix: must match pattern/);
    expect(errorOf({ mode: 'x-accel-redirect', internalPrefix: '/i', secureLink: { prefix: '/s' } })).toBe(" at /datastores/0/opts/proxyOffload/secureLink: must have required property 'secret'");
    expect(errorOf({ mode: 'x-accel-redirect', internalPrefix: '/i', secureLink: { prefix: '/s', secret: 'x', expirySeconds: 86_401 } })).toMatch(/secureLink\/expirySeconds: must be <= 86400$/);
    expect(errorOf({ mode: 'x-accel-redirect', internalPrefix: '/i', extra: 1 })).toBe(' at /datastores/0/opts/proxyOffload/extra: unknown key');
  });
});

test('the README shows the nginx and lighttpd snippets the tests run, as they are', () => {
  const readme = readFileSync('README.md', 'utf8');
  expect(readme).toContain(`\`\`\`nginx\n${readFileSync('contrib/nginx-offload.conf', 'utf8')}\`\`\`\n`);
  expect(readme).toContain(`\`\`\`lighttpd\n${readFileSync('contrib/lighttpd-offload.conf', 'utf8')}\`\`\`\n`);
});
