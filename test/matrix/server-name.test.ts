import { formatServerName, isValidServerName, parseServerName } from '../../src/matrix/server-name.js';

describe('parseServerName: the spec examples (appendices "Server Name")', () => {
  test.each([
    ['matrix.org', { hostname: 'matrix.org', kind: 'dns' }],
    ['matrix.org:8888', { hostname: 'matrix.org', port: 8888, kind: 'dns' }],
    ['1.2.3.4', { hostname: '1.2.3.4', kind: 'ipv4' }],
    ['1.2.3.4:1234', { hostname: '1.2.3.4', port: 1234, kind: 'ipv4' }],
    ['[1234:5678::abcd]', { hostname: '1234:5678::abcd', kind: 'ipv6' }],
    ['[1234:5678::abcd]:5678', { hostname: '1234:5678::abcd', port: 5678, kind: 'ipv6' }],
  ])('%s', (serverName, expected) => {
    expect(parseServerName(serverName)).toStrictEqual(expected); // no `port: undefined` key on names without a port
    expect(formatServerName(parseServerName(serverName)!)).toBe(serverName);
  });
});

describe('parseServerName: other valid names', () => {
  test.each([
    ['localhost', 'dns'],
    ['Example.ORG', 'dns'], // case-sensitive and allowed, merely not recommended
    ['xn--bcher-kva.example', 'dns'],
    ['a-b.c-d.example:65535', 'dns'],
    ['matrix.org:1', 'dns'],
    ['0.0.0.0', 'ipv4'],
    ['255.255.255.255:443', 'ipv4'],
    ['[::1]', 'ipv6'],
    ['[::ffff:1.2.3.4]:8448', 'ipv6'],
    ['[FE80::1]', 'ipv6'],
    [`${'a'.repeat(63)}.example`, 'dns'],
    [Array.from({ length: 4 }, () => 'a'.repeat(63)).join('.'), 'dns'], // 255 characters
  ])('%s is a %s name', (serverName, kind) => {
    expect(parseServerName(serverName)?.kind).toBe(kind);
    expect(isValidServerName(serverName)).toBe(true);
  });
});

describe('parseServerName: hostile and off-grammar input is refused', () => {
  test.each([
    ['empty', ''],
    ['a path', 'a/b'],
    ['traversal', '../'],
    ['traversal with a host', 'example.org/../etc'],
    ['unclosed bracket', '[::1'],
    ['IPv6 without brackets', '::1'],
    ['IPv6 with garbage after the bracket', '[::1]x'],
    ['IPv6 with an empty port', '[::1]:'],
    ['IPv6 with a port after another separator', '[::1]x80'],
    ['IPv6 zone id', '[fe80::1%eth0]'],
    ['bracketed IPv4', '[1.2.3.4]'],
    ['bracketed name', '[example.org]'],
    ['octet above 255', '1.2.3.256'],
    ['octal-looking octet', '010.0.0.1'],
    ['five numeric labels', '1.2.3.4.5'],
    ['three numeric labels', '127.0.1'],
    ['one number (a URL parser reads 2130706433 as 127.0.0.1)', '2130706433'],
    ['hex first label', '0x7f.0.0.1'],
    // A URL parser reads these as IPv4 addresses: only the last-label rule refuses them (they are fine DNS text).
    ['hex last label after a name', 'example.0x10'],
    ['hex last label after octets', '1.2.3.0x4'],
    ['upper-case hex last label', 'example.0XfF'],
    ['bare 0x last label (a URL parser reads it as 0)', 'example.0x'],
    ['numeric last label', 'example.123'],
    ['port 0', 'example.org:0'],
    ['port above 65535', 'example.org:65536'],
    ['six-digit port', 'example.org:000443'],
    ['empty port', 'example.org:'],
    ['signed port', 'example.org:+80'],
    ['two ports', 'example.org:80:80'],
    ['a space', 'example .org'],
    ['leading space', ' example.org'],
    ['trailing newline', 'example.org\n'],
    ['a NUL', 'example.org\0'],
    ['unicode', 'exämple.org'],
    ['fullwidth dot', 'example。org'],
    ['underscore', 'my_host.example'],
    ['userinfo', 'user@example.org'],
    ['query', 'example.org?x'],
    ['empty label', 'a..b'],
    ['leading dot', '.example.org'],
    ['trailing dot', 'example.org.'],
    ['label over 63 characters', `${'a'.repeat(64)}.example`],
    ['over 255 characters', `${'a.'.repeat(128)}a`],
    ['a scheme', 'https://example.org'],
  ])('%s', (_name, serverName) => {
    expect(parseServerName(serverName)).toBeNull();
    expect(isValidServerName(serverName)).toBe(false);
  });
});

test('a value that is not a string (from untrusted JSON) is refused, not thrown on', () => {
  for (const value of [42, null, undefined, {}, ['a.example']]) expect(parseServerName(value as unknown as string)).toBeNull();
});
