import { BlockedAddressError, DEFAULT_IP_BLOCKLIST, IpFilter } from '../../src/federation/ip-filter.js';

// Synapse's DEFAULT_IP_RANGE_BLOCKLIST (element-hq/synapse synapse/config/server.py), copied from there.
const SYNAPSE_BLOCKLIST = [
  '127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '192.0.0.0/24',
  '169.254.0.0/16', '192.88.99.0/24', '198.18.0.0/15', '192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24',
  '224.0.0.0/4', '::1/128', 'fe80::/10', 'fc00::/7', '2001:db8::/32', 'ff00::/8', 'fec0::/10',
];

describe('IpFilter defaults', () => {
  const filter = new IpFilter();

  test('holds Synapse\'s 19 ranges plus 0.0.0.0/8 and ::/128', () => {
    expect(SYNAPSE_BLOCKLIST).toHaveLength(19);
    expect([...DEFAULT_IP_BLOCKLIST].sort()).toEqual([...SYNAPSE_BLOCKLIST, '0.0.0.0/8', '::/128'].sort());
  });

  // First and last address of every range, and the neighbours just outside it.
  test.each([
    ['127.0.0.1', true], ['127.255.255.255', true], ['126.255.255.255', false], ['128.0.0.0', false],
    ['10.0.0.0', true], ['10.255.255.255', true], ['11.0.0.0', false], ['9.255.255.255', false],
    ['172.16.0.0', true], ['172.31.255.255', true], ['172.15.255.255', false], ['172.32.0.0', false],
    ['192.168.0.0', true], ['192.168.255.255', true], ['192.169.0.0', false], ['192.167.255.255', false],
    ['100.64.0.0', true], ['100.127.255.255', true], ['100.63.255.255', false], ['100.128.0.0', false],
    ['192.0.0.1', true], ['192.0.1.0', false],
    ['169.254.169.254', true], ['169.255.0.0', false],
    ['192.88.99.1', true], ['192.88.100.0', false],
    ['198.18.0.0', true], ['198.19.255.255', true], ['198.20.0.0', false], ['198.17.255.255', false],
    ['192.0.2.7', true], ['198.51.100.200', true], ['203.0.113.9', true], ['203.0.114.0', false],
    ['224.0.0.1', true], ['239.255.255.255', true], ['223.255.255.255', false],
    ['0.0.0.0', true], ['0.255.255.255', true], ['1.0.0.0', false],
    ['8.8.8.8', false], ['1.1.1.1', false], ['151.101.1.1', false],
    ['::1', true], ['::', true], ['::2', true],
    ['fe80::1', true], ['febf:ffff::1', true], ['fec0::1', true], ['feff::1', true], ['fe7f::1', false],
    ['fc00::1', true], ['fdff:ffff::1', true], ['fe00::1', false], ['fbff::1', false],
    ['2001:db8::1', true], ['2001:db9::1', false],
    ['ff02::1', true],
    ['2606:4700:4700::1111', false], ['2a00:1450:4001:82b::200e', false],
  ])('%s blocked: %s', (address, blocked) => {
    expect(filter.isBlocked(address)).toBe(blocked);
  });

  test.each([
    ['IPv4-mapped loopback', '::ffff:127.0.0.1'],
    ['IPv4-mapped private', '::ffff:10.1.2.3'],
    ['IPv4-mapped in hex', '::ffff:7f00:1'],
    ['IPv4-compatible', '::127.0.0.1'],
    // 192.168.1.1 only when read from the 2nd and 3rd groups: other groups or byte orders give public addresses.
    ['6to4 of a private address', '2002:c0a8:0101:0808::'],
    ['NAT64 of loopback', '64:ff9b::7f00:1'],
    ['bracketed', '[::1]'],
    ['with a zone id', 'fe80::1%eth0'],
  ])('an IPv4 range covers its IPv6 forms: %s', (_what, address) => {
    expect(filter.isBlocked(address)).toBe(true);
  });

  test('IPv6 forms of public IPv4 addresses pass', () => {
    expect(filter.isBlocked('::ffff:8.8.8.8')).toBe(false);
    expect(filter.isBlocked('2002:0808:0808::1')).toBe(false);
    expect(filter.isBlocked('2002:0808:0808:c0a8:0101::')).toBe(false); // a private address outside the embedded groups
  });

  test('brackets and zone ids are stripped before the check, so a public address in those forms passes', () => {
    expect(filter.isBlocked('[2606:4700:4700::1111]')).toBe(false);
    expect(filter.isBlocked('2606:4700:4700::1111%eth0')).toBe(false);
    expect(filter.isBlocked('[2606:4700:4700::1111%eth0]')).toBe(false);
  });

  test('anything that is not an IP address is blocked', () => {
    for (const text of ['', 'localhost', '127.1', '1.2.3', '999.1.1.1', 'example.org']) expect(filter.isBlocked(text)).toBe(true);
  });
});

describe('IpFilter configuration', () => {
  test('the allow-list exempts addresses (and their IPv4-mapped forms) from the blocklist', () => {
    const filter = new IpFilter({ allowlist: ['127.0.0.1/32', '10.5.0.0/16'] });
    expect(filter.isBlocked('127.0.0.1')).toBe(false);
    expect(filter.isBlocked('::ffff:127.0.0.1')).toBe(false);
    expect(filter.isBlocked('127.0.0.2')).toBe(true);
    expect(filter.isBlocked('10.5.200.1')).toBe(false);
    expect(filter.isBlocked('10.6.0.1')).toBe(true);
  });

  test('the blocklist adds ranges; a bare address is one host', () => {
    const filter = new IpFilter({ blocklist: ['8.8.8.0/24', '1.1.1.1', '2606:4700::/32'] });
    expect(filter.isBlocked('8.8.8.8')).toBe(true);
    expect(filter.isBlocked('8.8.9.8')).toBe(false);
    expect(filter.isBlocked('1.1.1.1')).toBe(true);
    expect(filter.isBlocked('1.1.1.2')).toBe(false);
    expect(filter.isBlocked('2606:4700:4700::1111')).toBe(true);
    expect(filter.isBlocked('127.0.0.1')).toBe(true);
  });

  test('a bare IPv6 address in the blocklist is one host, not a /32', () => {
    const filter = new IpFilter({ blocklist: ['2606:4700::1111'] });
    expect(filter.isBlocked('2606:4700::1111')).toBe(true);
    expect(filter.isBlocked('2606:4700::1112')).toBe(false);
  });

  test('assertAllowed names the host and the address', () => {
    const filter = new IpFilter();
    expect(() => filter.assertAllowed('10.0.0.1', 'internal.example')).toThrow(/internal\.example: 10\.0\.0\.1 is in a blocked IP range/);
    expect(() => filter.assertAllowed('8.8.8.8')).not.toThrow();
    const error = (() => { try { filter.assertAllowed('10.0.0.1'); } catch (e) { return e as BlockedAddressError; } throw new Error('not thrown'); })();
    expect([error.name, error.code, error.host, error.addresses]).toEqual(['BlockedAddressError', 'EBLOCKED', '10.0.0.1', ['10.0.0.1']]);
    expect(new BlockedAddressError('h.example', ['10.0.0.1', '::1']).message)
      .toBe('refusing to connect to h.example: 10.0.0.1, ::1 are in a blocked IP range (federation.ipBlocklist / ipAllowlist)');
  });

  test('invalid ranges are refused with the config key', () => {
    expect(() => new IpFilter({ blocklist: ['10.0.0.0/33'] })).toThrow(/federation\.ipBlocklist: "10\.0\.0\.0\/33"/);
    expect(() => new IpFilter({ allowlist: ['not-an-ip'] })).toThrow(/federation\.ipAllowlist: "not-an-ip"/);
  });
});
