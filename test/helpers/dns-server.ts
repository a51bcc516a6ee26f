// A real DNS server on 127.0.0.1 (UDP, dns-packet) answering from a zone the test controls, so discovery
// runs through node:dns exactly as in production. Unknown names get NXDOMAIN; CNAMEs are followed; a name
// holding a SERVFAIL record fails every query, as a broken authoritative server does.
import { createSocket, type RemoteInfo } from 'node:dgram';
import { once } from 'node:events';
import dnsPacket from 'dns-packet';

export type ZoneRecord =
  | { type: 'A' | 'AAAA' | 'CNAME'; data: string }
  | { type: 'SRV'; data: { priority: number; weight: number; port: number; target: string } }
  | { type: 'SERVFAIL' };

export interface DnsServer {
  /** "127.0.0.1:port", for Resolver.setServers and federation.dnsServers. */
  readonly address: string;
  /** name (lowercase, no trailing dot) -> records; edit freely between requests. */
  readonly zone: Map<string, ZoneRecord[]>;
  /** Every question asked, as "TYPE name". */
  readonly queries: string[];
  close(): Promise<void>;
}

const SERVFAIL = 2;
const NXDOMAIN = 3;

export async function startDnsServer(zone: Record<string, ZoneRecord[]> = {}): Promise<DnsServer> {
  const records = new Map(Object.entries(zone).map(([name, list]) => [normalise(name), list]));
  const queries: string[] = [];
  const socket = createSocket('udp4');
  socket.on('message', (message: Buffer, peer: RemoteInfo) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (!question) return;
    queries.push(`${question.type} ${normalise(question.name)}`);
    const { answers, known, failed } = answer(records, question.name, question.type);
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (failed ? SERVFAIL : known ? 0 : NXDOMAIN),
      questions: [question],
      answers,
    });
    socket.send(response, peer.port, peer.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    zone: records,
    queries,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

function answer(records: Map<string, ZoneRecord[]>, name: string, type: string): { answers: dnsPacket.Answer[]; known: boolean; failed?: boolean } {
  const answers: dnsPacket.Answer[] = [];
  let current = normalise(name);
  let known = false;
  for (let hops = 0; hops < 8; hops++) {
    const list = records.get(current);
    if (!list) break;
    known = true;
    if (list.some((r) => r.type === 'SERVFAIL')) return { answers: [], known, failed: true };
    const matching = list.filter((r): r is Exclude<ZoneRecord, { type: 'SERVFAIL' }> => r.type === type);
    if (matching.length > 0) {
      for (const record of matching) answers.push({ type: record.type, name: current, ttl: 60, data: record.data } as dnsPacket.Answer);
      break;
    }
    const cname = list.find((r): r is { type: 'CNAME'; data: string } => r.type === 'CNAME');
    if (!cname || type === 'CNAME') break;
    answers.push({ type: 'CNAME', name: current, ttl: 60, data: cname.data });
    current = normalise(cname.data);
  }
  return { answers, known };
}

function normalise(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}
