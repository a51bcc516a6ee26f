// Property tests of the config loader: any YAML text or parsed value ends in a Config or a ConfigError.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { buildConfig, ConfigError, loadConfigFile } from '../../src/config/config.js';

const RUNS = { numRuns: 200, seed: 1414 };
const dir = mkdtempSync(join(tmpdir(), 'config-fuzz-'));
const file = join(dir, 'config.yaml');

function outcome(run: () => unknown): 'config' | 'refused' {
  try {
    run();
    return 'config';
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return 'refused';
  }
}

const KEYS = ['listen', 'host', 'port', 'homeservers', 'name', 'clientApi', 'hostnames', 'media', 'maxUploadBytes', 'datastores', 'federation', 'trustProxy', 'logLevel', 'masterKey', 'file', 'env', 'quotas', 'rateLimits', 'database', 'url', '<<', '__proto__', 'constructor'];
const scalar = fc.oneof(fc.constantFrom('', 'null', '~', 'true', '-1', '0x10', '1e999', '.inf', '127.0.0.1', 'a.example', '"x"', '[', '{', '*a', '&a', '!!binary', '!!js/function', "'", '|', '>'), fc.string({ maxLength: 12 }));
const yamlLine = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.constantFrom('', '- '), fc.constantFrom(...KEYS), fc.constantFrom(': ', ':', ' : '), scalar)
  .map(([indent, dash, key, colon, value]) => `${'  '.repeat(indent)}${dash}${key}${colon}${value}`);
const yamlText = fc.oneof(fc.array(yamlLine, { maxLength: 12 }).map((l) => l.join('\n')), fc.string({ maxLength: 200 }));

test('any YAML text: a Config or a ConfigError', () => {
  fc.assert(fc.property(yamlText, (text) => {
    writeFileSync(file, text);
    outcome(() => loadConfigFile(file));
  }), RUNS);
});

test('any parsed value, plausible shapes included: a Config or a ConfigError', () => {
  const leaf = fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constantFrom('a.example', 'http://127.0.0.1:1', 'loopback', 8000, -1, 1e300));
  const plausible = fc.dictionary(fc.constantFrom(...KEYS), fc.oneof(leaf, fc.dictionary(fc.constantFrom(...KEYS), leaf, { maxKeys: 4 }), fc.array(fc.dictionary(fc.constantFrom(...KEYS), leaf, { maxKeys: 4 }), { maxLength: 2 })), { maxKeys: 6 });
  const seen = new Set<string>();
  fc.assert(fc.property(fc.oneof(plausible, fc.anything()), (raw) => {
    seen.add(outcome(() => buildConfig(raw, file)));
  }), RUNS);
  expect(seen.has('refused')).toBe(true);
});
