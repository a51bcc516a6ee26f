// The subset of PEM (RFC 1421 / Go's encoding/pem) that Dendrite and matrix-media-repo key files use.

export interface PemBlock {
  type: string;
  headers: Map<string, string>;
  /** Base64 text of the body, line breaks removed. */
  body: string;
  /** 1-based line number of the BEGIN line, for error messages. */
  line: number;
}

/** Thrown with a message that never quotes body text, so that key material cannot leak into it. */
export class PemError extends Error {}

const BEGIN = /^-----BEGIN ([A-Z0-9][A-Z0-9 ]*)-----$/;
const HEADER = /^([A-Za-z0-9-]+):(.*)$/;

export function looksLikePem(text: string): boolean {
  return /^\s*-----BEGIN /m.test(text);
}

/** Reads every block; only blank lines may stand between blocks. */
export function parsePemBlocks(text: string): PemBlock[] {
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  const blocks: PemBlock[] = [];
  let i = 0;
  while (i < lines.length) {
    if (lines[i] === '') {
      i++;
      continue;
    }
    const begin = BEGIN.exec(lines[i]);
    if (!begin) throw new PemError(`line ${i + 1}: expected a "-----BEGIN ...-----" line`);
    const block: PemBlock = { type: begin[1], headers: new Map(), body: '', line: i + 1 };
    i++;
    for (let header; i < lines.length && (header = HEADER.exec(lines[i])); i++) {
      if (block.headers.has(header[1])) throw new PemError(`line ${i + 1}: header "${header[1]}" appears twice`);
      block.headers.set(header[1], header[2].trim());
    }
    const end = `-----END ${block.type}-----`;
    for (;;) {
      if (i >= lines.length) throw new PemError(`line ${block.line}: "${block.type}" block has no "${end}" line`);
      const line = lines[i++];
      if (line === end) break;
      if (line.startsWith('-----')) throw new PemError(`line ${i}: expected "${end}"`);
      block.body += line;
    }
    blocks.push(block);
  }
  return blocks;
}

/**
 * Encodes as Go's pem.EncodeToMemory does: headers in sorted order, a blank line after them,
 * padded standard Base64 in 64-column lines, a trailing newline.
 */
export function encodePemBlock(type: string, headers: Record<string, string>, body: Uint8Array): string {
  const headerLines = Object.keys(headers)
    .sort()
    .map((name) => `${name}: ${headers[name]}\n`)
    .join('');
  const base64 = Buffer.from(body).toString('base64');
  const bodyLines = base64.match(/.{1,64}/g) ?? [];
  return [
    `-----BEGIN ${type}-----\n`,
    headerLines,
    headerLines ? '\n' : '',
    bodyLines.map((line) => `${line}\n`).join(''),
    `-----END ${type}-----\n`,
  ].join('');
}
