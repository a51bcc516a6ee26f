import { originMatches } from '../../src/federation/inbound-auth.js';

describe('originMatches: allow/deny patterns', () => {
  test.each([
    ['evil.example', 'evil.example', true],
    ['evil.example', 'EVIL.example', true],
    ['evil.example', 'evil.example:8448', true],
    ['evil.example', 'sub.evil.example', false],
    ['evil.example', 'evil.example.com', false],
    ['evil.example', 'notevil.example', false],
    ['evil.example:8448', 'evil.example:8448', true],
    ['evil.example:8448', 'evil.example', false],
    ['evil.example:8448', 'evil.example:443', false],
    ['*.evil.example', 'a.b.evil.example', true],
    ['*.evil.example', 'a.evil.example:8448', true],
    ['*.evil.example', 'evil.example', false],
    ['*.evil.example', 'evil-example', false],
    ['*', 'anything.example', true],
    ['a*c.example', 'abbbc.example', true],
    ['a.c', 'abc', false], // dots are literal, not regex wildcards
    ['[::1]', '[::1]:8448', true],
    ['1.2.3.4', '1.2.3.4:8448', true],
    ['1.2.3.*', '1.2.3.44', true],
    ['(x|y).example', 'x.example', false],
  ])('%s against %s: %s', (pattern, origin, expected) => {
    expect(originMatches(pattern, origin)).toBe(expected);
  });
});
