// Reading static access tokens: the file and environment forms, and errors that name the source, never a token.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, ConfigError } from '../../src/config/config.js';
import { readStaticTokens } from '../../src/config/static-tokens.js';

const dir = mkdtempSync(join(tmpdir(), 'static-tokens-config-'));
const TOKEN = 'abcdefghijklmnop0123';

function tenantWith(text: string) {
  const file = join(dir, `${Math.random()}.tokens`);
  writeFileSync(file, text);
  return buildConfig({ homeservers: [{ name: 'hs.example', staticAccessTokens: { file } }] }).homeservers[0]!;
}

describe('readStaticTokens', () => {
  test('reads lines of TOKEN USER, skipping blanks and comments; ";" separates entries in a variable', () => {
    expect(readStaticTokens(tenantWith(`# comment\n${TOKEN} @a:hs.example\n\n  ${TOKEN}x\t@b:hs.example  \n`))).toEqual(
      new Map([[TOKEN, '@a:hs.example'], [`${TOKEN}x`, '@b:hs.example']]));
    process.env.STATIC_TOKENS_TEST = `${TOKEN} @a:hs.example;${TOKEN}y @c:hs.example`;
    const hs = buildConfig({ homeservers: [{ name: 'hs.example', staticAccessTokens: { env: 'STATIC_TOKENS_TEST' } }] }).homeservers[0]!;
    expect([...readStaticTokens(hs).values()]).toEqual(['@a:hs.example', '@c:hs.example']);
    delete process.env.STATIC_TOKENS_TEST;
  });

  test('a homeserver without them has none', () => {
    expect(readStaticTokens(buildConfig({ homeservers: [{ name: 'hs.example', clientApi: 'http://127.0.0.1:1' }] }).homeservers[0]!).size).toBe(0);
  });

  test.each([
    [`${TOKEN}`, 'entry 1: expected "TOKEN @user:server"'],
    [`short @a:hs.example`, 'entry 1: a token must be at least 16 characters'],
    [`${TOKEN} alice`, 'entry 1: "alice" is not a Matrix user ID'],
    [`${TOKEN} @a:hs.example\n${TOKEN} @b:hs.example`, 'entry 2: the same token appears twice'],
  ])('%j is refused: %s, naming no token', (text, problem) => {
    const error = (() => { try { readStaticTokens(tenantWith(text)); } catch (e) { return e as Error; } })();
    expect(error?.message).toContain(`homeserver hs.example staticAccessTokens, ${problem}`);
    expect(error?.message).not.toContain(TOKEN);
  });

  test('a missing file or variable names it', () => {
    const file = join(dir, 'missing.tokens');
    expect(() => readStaticTokens(buildConfig({ homeservers: [{ name: 'hs.example', staticAccessTokens: { file } }] }).homeservers[0]!))
      .toThrow(`homeserver hs.example staticAccessTokens: cannot read ${file} (ENOENT)`);
    expect(() => readStaticTokens(buildConfig({ homeservers: [{ name: 'hs.example', staticAccessTokens: { env: 'NO_SUCH_VAR_HERE' } }] }).homeservers[0]!))
      .toThrow('environment variable NO_SUCH_VAR_HERE is not set');
  });

  test('inline tokens in the config file are refused: they belong in a file or the environment', () => {
    expect(() => buildConfig({ homeservers: [{ name: 'hs.example', staticAccessTokens: `${TOKEN} @a:hs.example` }] })).toThrow(ConfigError);
  });
});
