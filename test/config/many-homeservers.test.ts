// A provider's config with 10,000 homeservers: it loads from YAML, every entry resolved, and the checks
// across entries (names, hostnames, datastores' homeservers) still find the one bad entry at the end.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfigFile } from '../../src/config/config.js';
import { Tenants } from '../../src/config/tenants.js';

const COUNT = 10_000;
const dir = mkdtempSync(join(tmpdir(), 'many-homeservers-'));

function configWith(lines: string[], extra: string[] = []): string {
  const file = join(dir, `c${Math.random()}.yaml`);
  writeFileSync(file, ['homeservers:', ...lines, ...extra, ''].join('\n'));
  return file;
}

const entry = (i: number) => `  - {name: hs${i}.example, clientApi: "https://hs${i}.example/", hostnames: [media.hs${i}.example], signingKeyPath: keys/hs${i}.key}`;

describe('a config of 10,000 homeservers', () => {
  test('loads, each entry resolved, and each homeserver is found by name and by hostname', () => {
    const file = configWith(Array.from({ length: COUNT }, (_, i) => entry(i)), [
      'datastores:',
      '  - {id: all, type: file, forKinds: [all], opts: {path: media}}',
      `  - {id: last, type: file, forKinds: [local_media], forHomeservers: [hs${COUNT - 1}.example], opts: {path: last}}`,
    ]);
    const config = loadConfigFile(file);
    expect(config.homeservers).toHaveLength(COUNT);
    const last = config.homeservers[COUNT - 1]!;
    expect(last).toMatchObject({ name: `hs${COUNT - 1}.example`, clientApi: `https://hs${COUNT - 1}.example`, signingKeyPath: join(dir, `keys/hs${COUNT - 1}.key`) });
    const tenants = new Tenants(config.homeservers);
    expect(tenants.byName('hs4321.example')?.clientApi).toBe('https://hs4321.example');
    expect(tenants.byHostHeader('media.hs4321.example:443')?.name).toBe('hs4321.example');
    expect(tenants.byName('media.hs4321.example')).toBeUndefined();
  });

  test('a hostname taken by an earlier homeserver is still refused, naming both', () => {
    const lines = Array.from({ length: COUNT }, (_, i) => entry(i));
    lines[COUNT - 1] = `  - {name: last.example, clientApi: "https://last.example", hostnames: [media.hs17.example]}`;
    const file = configWith(lines);
    expect(() => loadConfigFile(file)).toThrow(new ConfigError(file, `/homeservers/${COUNT - 1}`, '"media.hs17.example" is already used by homeserver 17'));
  });
});
