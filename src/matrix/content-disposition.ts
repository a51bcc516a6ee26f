// Content-Disposition both ways: for served media, inline only for the spec's allow-list ("Serving inline
// content"), else attachment, the file name encoded per RFC 6266 / RFC 8187; and the file name read back
// from a remote server's header.

const INLINE_CONTENT_TYPES = new Set([
  'text/css', 'text/plain', 'text/csv',
  'application/json', 'application/ld+json',
  'image/jpeg', 'image/gif', 'image/png', 'image/apng', 'image/webp', 'image/avif',
  'video/mp4', 'video/webm', 'video/ogg', 'video/quicktime',
  'audio/mp4', 'audio/webm', 'audio/aac', 'audio/mpeg', 'audio/ogg', 'audio/wave', 'audio/wav',
  'audio/x-wav', 'audio/x-pn-wav', 'audio/flac', 'audio/x-flac',
]);

// C0, DEL and C1 controls: never part of a header, and never meaningful in a file name.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/g;
const NON_ASCII = /[^\u0000-\u007f]/gu;
const HAS_NON_ASCII = /[^\u0000-\u007f]/;
// RFC 8187 attr-char: everything else in filename* is percent-encoded.
const ATTR_CHAR = /^[A-Za-z0-9!#$&+\-.^_`|~]$/;

/** The media type without parameters, lowercased: "Text/Plain; charset=x" -> "text/plain". */
export function mediaTypeEssence(contentType: string): string {
  return contentType.split(';', 1)[0]!.trim().toLowerCase();
}

export function isInlineContentType(contentType: string): boolean {
  return INLINE_CONTENT_TYPES.has(mediaTypeEssence(contentType));
}

/** `inline` or `attachment` by the allow-list, with the file name when there is one. */
export function contentDisposition(contentType: string, fileName: string | null | undefined): string {
  return formatDisposition(isInlineContentType(contentType) ? 'inline' : 'attachment', fileName);
}

/** RFC 6266: an ASCII `filename` (quoted, escaped), plus RFC 8187 `filename*` when the name is not ASCII. */
export function formatDisposition(type: 'inline' | 'attachment', fileName: string | null | undefined): string {
  const name = (fileName ?? '').replace(CONTROL_CHARS, '');
  if (name === '') return type;
  const ascii = name.replace(NON_ASCII, '_').replace(/["\\]/g, '\\$&');
  if (!HAS_NON_ASCII.test(name)) return `${type}; filename="${ascii}"`;
  return `${type}; filename="${ascii}"; filename*=utf-8''${encodeRfc8187(name)}`;
}

function encodeRfc8187(value: string): string {
  let encoded = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const char = String.fromCharCode(byte);
    encoded += byte < 0x80 && ATTR_CHAR.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}

/**
 * The file name of a Content-Disposition value: filename* (RFC 8187, UTF-8 or ISO-8859-1) wins over
 * filename; quoted or token values; null when absent or when it holds control characters or path parts.
 */
export function fileNameFromContentDisposition(value: string | undefined): string | null {
  if (value === undefined) return null;
  const params = new Map<string, string>();
  const param = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  for (const match of value.matchAll(param)) {
    const name = match[1]!.toLowerCase();
    const raw = match[2]!.trim();
    if (!params.has(name)) params.set(name, raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw);
  }
  const extended = params.get('filename*');
  const decoded = extended === undefined ? undefined : decodeExtValue(extended);
  const name = decoded ?? params.get('filename');
  if (name === undefined || name === '' || /[\u0000-\u001f\u007f/\\]/.test(name)) return null;
  return name;
}

function decodeExtValue(value: string): string | undefined {
  const match = /^([A-Za-z0-9!#$%&+\-^_`{}~]+)'[^']*'(.*)$/.exec(value);
  if (!match) return undefined;
  const charset = match[1]!.toLowerCase();
  try {
    if (charset === 'utf-8') return decodeURIComponent(match[2]!);
    if (charset === 'iso-8859-1') return match[2]!.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  } catch {
    return undefined;
  }
  return undefined;
}
