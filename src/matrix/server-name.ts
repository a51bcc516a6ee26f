// Server names (spec appendix "Server Name"): hostname [":" port], hostname = IPv4 / "[" IPv6 "]" / dns-name.
import { isIPv6 } from 'node:net';

export type ServerNameKind = 'dns' | 'ipv4' | 'ipv6';

export interface ParsedServerName {
  /** The host as written; for IPv6 the address without its brackets. */
  readonly hostname: string;
  readonly port?: number;
  readonly kind: ServerNameKind;
}

const MAX_DNS_NAME_LENGTH = 255;
const MAX_LABEL_LENGTH = 63;
const DNS_NAME = /^[A-Za-z0-9.-]+$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;
const PORT = /^[0-9]{1,5}$/;
// Leading zeros are refused: URL parsers read "010" as octal, so the same text would name two hosts.
const IPV4_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
// WHATWG URL parsers treat a host whose last label is a number (decimal or 0x hex) as an IPv4 address.
const NUMERIC_LABEL = /^(?:[0-9]+|0[xX][0-9A-Fa-f]*)$/;

export function parseServerName(serverName: string): ParsedServerName | null {
  if (typeof serverName !== 'string' || serverName.length === 0) return null;
  if (serverName.startsWith('[')) return parseBracketedIPv6(serverName);
  const colon = serverName.indexOf(':');
  const hostname = colon === -1 ? serverName : serverName.slice(0, colon);
  const port = colon === -1 ? undefined : parsePort(serverName.slice(colon + 1));
  if (port === null) return null;
  const kind = hostKind(hostname);
  if (kind === null) return null;
  return port === undefined ? { hostname, kind } : { hostname, port, kind };
}

export function isValidServerName(serverName: string): boolean {
  return parseServerName(serverName) !== null;
}

/** Writes a parsed server name back in its grammar form (brackets around IPv6). */
export function formatServerName(name: ParsedServerName): string {
  const host = name.kind === 'ipv6' ? `[${name.hostname}]` : name.hostname;
  return name.port === undefined ? host : `${host}:${name.port}`;
}

function parseBracketedIPv6(serverName: string): ParsedServerName | null {
  const close = serverName.indexOf(']');
  if (close === -1) return null;
  const hostname = serverName.slice(1, close);
  if (!IPV6_CHARS.test(hostname) || !isIPv6(hostname)) return null;
  const rest = serverName.slice(close + 1);
  if (rest === '') return { hostname, kind: 'ipv6' };
  if (!rest.startsWith(':')) return null;
  const port = parsePort(rest.slice(1));
  return port === null ? null : { hostname, port, kind: 'ipv6' };
}

/** The port number, or null when the text is not 1–65535 in decimal digits. */
function parsePort(text: string): number | null {
  if (!PORT.test(text)) return null;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : null;
}

function hostKind(hostname: string): ServerNameKind | null {
  if (hostname.length === 0 || hostname.length > MAX_DNS_NAME_LENGTH || !DNS_NAME.test(hostname)) return null;
  const labels = hostname.split('.');
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) {
    return labels.length === 4 && labels.every(isIPv4Octet) ? 'ipv4' : null;
  }
  return labels.every((label) => label.length > 0 && label.length <= MAX_LABEL_LENGTH) ? 'dns' : null;
}

function isIPv4Octet(label: string): boolean {
  return IPV4_OCTET.test(label) && Number(label) <= 255;
}
