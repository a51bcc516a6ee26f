// Outbound DNS (src/federation/dns.ts) against a real DNS server on loopback: which answers mean "no records"
// and which are failures, the address order, and the lookup every outbound socket uses, with its IP filter.
import { createSocket } from 'node:dgram';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { once } from 'node:events';
import { Dns } from '../../src/federation/dns.js';
import { BlockedAddressError, IpFilter } from '../../src/federation/ip-filter.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';

let server: DnsServer;

beforeAll(async () => {
  server = await startDnsServer({
    'both.test': [{ type: 'A', data: '1.1.1.1' }, { type: 'A', data: '10.0.0.1' }, { type: 'AAAA', data: '2606:4700::1111' }],
    'v4.test': [{ type: 'A', data: '9.9.9.9' }],
    'private.test': [{ type: 'A', data: '10.0.0.2' }],
    'cname.test': [{ type: 'CNAME', data: 'v4.test' }],
    '_matrix-fed._tcp.srv.test': [{ type: 'SRV', data: { priority: 1, weight: 2, port: 8448, target: 'v4.test' } }],
    'broken.test': [{ type: 'SERVFAIL' }],
    '_matrix-fed._tcp.broken.test': [{ type: 'SERVFAIL' }],
  });
});

afterAll(() => server.close());

const ownDns = () => new Dns({ servers: [server.address], timeoutMs: 1000 });

interface Looked {
  error: NodeJS.ErrnoException | null;
  address: string | LookupAddress[];
  family?: number;
}

function lookup(dns: Dns, filter: IpFilter | null, host: string, options: LookupOptions): Promise<Looked> {
  return new Promise((resolve) => {
    dns.filteredLookup(filter)(host, options, (error, address, family) => resolve({ error, address, family }));
  });
}

describe('resolveSrv', () => {
  test('gives the records of a name', async () => {
    expect(await ownDns().resolveSrv('_matrix-fed._tcp.srv.test')).toEqual([{ name: 'v4.test', port: 8448, priority: 1, weight: 2 }]);
  });

  test('a name that does not exist, or has no SRV record, gives none', async () => {
    expect(await ownDns().resolveSrv('_matrix-fed._tcp.nowhere.test')).toEqual([]);
    expect(await ownDns().resolveSrv('v4.test')).toEqual([]);
  });

  test('a failing server is an error, not "no records"', async () => {
    await expect(ownDns().resolveSrv('_matrix-fed._tcp.broken.test')).rejects.toMatchObject({ code: 'ESERVFAIL' });
  });

  test('a server that never answers fails after timeoutMs per try (two tries), not the 5 s default', async () => {
    const silent = createSocket('udp4');
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const started = Date.now();
      await expect(new Dns({ servers: [`127.0.0.1:${silent.address().port}`], timeoutMs: 200 }).resolveSrv('_matrix-fed._tcp.srv.test')).rejects.toMatchObject({ code: 'ETIMEOUT' });
      expect(Date.now() - started).toBeLessThan(4000);
    } finally {
      silent.close();
    }
  });
});

describe('resolveAddresses', () => {
  test('IPv6 addresses first, then IPv4, CNAMEs followed', async () => {
    expect(await ownDns().resolveAddresses('both.test')).toEqual([
      { address: '2606:4700::1111', family: 6 }, { address: '1.1.1.1', family: 4 }, { address: '10.0.0.1', family: 4 },
    ]);
    expect(await ownDns().resolveAddresses('cname.test')).toEqual([{ address: '9.9.9.9', family: 4 }]);
  });

  test('an IP literal is its own address, without a query', async () => {
    const before = server.queries.length;
    expect(await ownDns().resolveAddresses('192.0.2.9')).toEqual([{ address: '192.0.2.9', family: 4 }]);
    expect(await ownDns().resolveAddresses('2001:db8::9')).toEqual([{ address: '2001:db8::9', family: 6 }]);
    expect(server.queries.length).toBe(before);
  });

  test('a name without addresses is ENOTFOUND; a failing server is its own error', async () => {
    await expect(ownDns().resolveAddresses('nowhere.test')).rejects.toMatchObject({ code: 'ENOTFOUND', hostname: 'nowhere.test', message: 'no addresses found for nowhere.test' });
    await expect(ownDns().resolveAddresses('broken.test')).rejects.toMatchObject({ code: 'ESERVFAIL' });
  });

  test('without name servers (or with an empty list) the system resolver answers, /etc/hosts included', async () => {
    for (const dns of [new Dns(), new Dns({ servers: [] })]) {
      const before = server.queries.length;
      const addresses = await dns.resolveAddresses('localhost');
      expect(addresses.some((a) => a.address === '127.0.0.1' && a.family === 4)).toBe(true);
      expect(server.queries.length).toBe(before);
    }
  });
});

describe('filteredLookup', () => {
  const filter = () => new IpFilter();

  test('drops blocked addresses before the socket sees them', async () => {
    expect(await lookup(ownDns(), filter(), 'both.test', { all: true })).toEqual({
      error: null, address: [{ address: '2606:4700::1111', family: 6 }, { address: '1.1.1.1', family: 4 }], family: undefined,
    });
    expect(await lookup(ownDns(), filter(), 'both.test', {})).toEqual({ error: null, address: '2606:4700::1111', family: 6 });
  });

  test('keeps only the family asked for', async () => {
    expect(await lookup(ownDns(), filter(), 'both.test', { family: 4 })).toEqual({ error: null, address: '1.1.1.1', family: 4 });
    expect(await lookup(ownDns(), filter(), 'both.test', { family: 6, all: true })).toEqual({ error: null, address: [{ address: '2606:4700::1111', family: 6 }], family: undefined });
  });

  test('without a filter (trusted targets) nothing is dropped', async () => {
    const looked = await lookup(ownDns(), null, 'private.test', { all: true });
    expect(looked).toEqual({ error: null, address: [{ address: '10.0.0.2', family: 4 }], family: undefined });
  });

  test('only blocked addresses: a BlockedAddressError naming them, in the shape the caller asked for', async () => {
    for (const options of [{ all: true }, {}] as const) {
      const looked = await lookup(ownDns(), filter(), 'private.test', options);
      expect(looked.error).toBeInstanceOf(BlockedAddressError);
      expect(looked.error).toMatchObject({ host: 'private.test', addresses: ['10.0.0.2'] });
      expect(looked.address).toEqual('all' in options ? [] : '');
    }
  });

  test('no address of the family asked for: ENOTFOUND, not "blocked"', async () => {
    const looked = await lookup(ownDns(), filter(), 'v4.test', { family: 6 });
    expect(looked.error).not.toBeInstanceOf(BlockedAddressError);
    expect(looked.error).toMatchObject({ code: 'ENOTFOUND', message: 'no usable address for v4.test' });
    expect(looked.address).toBe('');
  });

  test('a DNS failure reaches the socket as it is', async () => {
    for (const options of [{ all: true }, {}] as const) {
      const looked = await lookup(ownDns(), filter(), 'broken.test', options);
      expect(looked.error).toMatchObject({ code: 'ESERVFAIL' });
      expect(looked.address).toEqual('all' in options ? [] : '');
    }
  });
});
