// SSRF protection: which resolved addresses an outbound connection may reach. The check runs on the
// address actually connected to (see lookup.ts), so a DNS answer cannot change between check and use.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Range = [Address, number];

/**
 * Synapse's DEFAULT_IP_RANGE_BLOCKLIST (element-hq/synapse, synapse/config/server.py, the same 19 ranges
 * matrix-media-repo blocks), plus "this network" 0.0.0.0/8 and the unspecified ::/128, which connect
 * to the local host on Linux.
 */
export const DEFAULT_IP_BLOCKLIST: readonly string[] = [
  '127.0.0.0/8',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '192.0.0.0/24',
  '169.254.0.0/16',
  '192.88.99.0/24',
  '198.18.0.0/15',
  '192.0.2.0/24',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '::1/128',
  'fe80::/10',
  'fc00::/7',
  '2001:db8::/32',
  'ff00::/8',
  'fec0::/10',
  '0.0.0.0/8',
  '::/128',
];

/** Thrown (or handed to a lookup callback) when every address of a destination is blocked. */
export class BlockedAddressError extends Error {
  readonly code = 'EBLOCKED';
  constructor(readonly host: string, readonly addresses: readonly string[]) {
    super(`refusing to connect to ${host}: ${addresses.join(', ')} ${addresses.length === 1 ? 'is' : 'are'} in a blocked IP range (federation.ipBlocklist / ipAllowlist)`);
    this.name = 'BlockedAddressError';
  }
}

export interface IpFilterOptions {
  /** Added to DEFAULT_IP_BLOCKLIST. */
  blocklist?: readonly string[];
  /** Exempt from the blocklist. */
  allowlist?: readonly string[];
  /** Replaces DEFAULT_IP_BLOCKLIST (tests of the filter itself). */
  defaults?: readonly string[];
}

export class IpFilter {
  private readonly blocked: Range[];
  private readonly allowed: Range[];

  constructor(options: IpFilterOptions = {}) {
    this.blocked = [...(options.defaults ?? DEFAULT_IP_BLOCKLIST), ...(options.blocklist ?? [])].map((r) => parseRange(r, 'federation.ipBlocklist'));
    this.allowed = (options.allowlist ?? []).map((r) => parseRange(r, 'federation.ipAllowlist'));
  }

  /** True when `address` (an IP literal) may not be connected to; anything unparsable is blocked. */
  isBlocked(address: string): boolean {
    const candidates = addressForms(address);
    if (candidates.length === 0) return true;
    const inAny = (ranges: Range[]) => candidates.some((a) => ranges.some((range) => a.kind() === range[0].kind() && a.match(range)));
    return inAny(this.blocked) && !inAny(this.allowed);
  }

  /** Throws BlockedAddressError unless `address` may be connected to. */
  assertAllowed(address: string, host = address): void {
    if (this.isBlocked(address)) throw new BlockedAddressError(host, [address]);
  }
}

function parseRange(text: string, where: string): Range {
  try {
    if (text.includes('/')) return ipaddr.parseCIDR(text);
    const address = ipaddr.parse(text);
    return [address, address.kind() === 'ipv4' ? 32 : 128];
  } catch {
    throw new Error(`${where}: "${text}" is not an IP address or CIDR range`);
  }
}

const IPV4_MAPPED: Range = ipaddr.parseCIDR('::ffff:0:0/96');
const IPV4_COMPATIBLE: Range = ipaddr.parseCIDR('::/96');
const SIX_TO_FOUR: Range = ipaddr.parseCIDR('2002::/16');
const NAT64: Range = ipaddr.parseCIDR('64:ff9b::/96');

/**
 * The address and every IPv4 address it embeds, so an IPv4 range also covers its IPv4-mapped,
 * IPv4-compatible, 6to4 and NAT64 forms (Synapse adds the first three to its IP sets the same way).
 */
function addressForms(text: string): Address[] {
  const bare = text.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  // Only the strict forms a socket reports: no inet_aton shorthands like "127.1".
  if (isIP(bare) === 0) return [];
  const address = ipaddr.parse(bare);
  if (address.kind() === 'ipv4') return [address];
  const v6 = address as ipaddr.IPv6;
  const parts = v6.parts;
  const embedded = (high: number, low: number) => new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
  if (v6.match(IPV4_MAPPED) || v6.match(NAT64) || v6.match(IPV4_COMPATIBLE)) return [v6, embedded(parts[6]!, parts[7]!)];
  if (v6.match(SIX_TO_FOUR)) return [v6, embedded(parts[1]!, parts[2]!)];
  return [v6];
}
