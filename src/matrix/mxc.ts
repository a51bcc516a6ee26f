// mxc://<server-name>/<media-id> (client-server API "Matrix Content (mxc://) URIs"). Both parts are
// allow-listed, never block-listed, so no path traversal can pass through a parsed URI.
import { isValidServerName } from './server-name.js';

/** The spec sets no limit; 255 keeps ids usable as file names and database keys. */
export const MAX_MEDIA_ID_LENGTH = 255;

const MEDIA_ID = /^[A-Za-z0-9_-]+$/;
const MXC_PREFIX = 'mxc://';

export interface MxcUri {
  readonly serverName: string;
  readonly mediaId: string;
}

export function isValidMediaId(mediaId: string): boolean {
  return typeof mediaId === 'string' && mediaId.length <= MAX_MEDIA_ID_LENGTH && MEDIA_ID.test(mediaId);
}

/** The server name and media id of an mxc URI, or null for anything off the grammar. */
export function parseMxc(uri: string): MxcUri | null {
  if (typeof uri !== 'string' || !uri.startsWith(MXC_PREFIX)) return null;
  const rest = uri.slice(MXC_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash === -1) return null;
  const serverName = rest.slice(0, slash);
  const mediaId = rest.slice(slash + 1);
  return isValidServerName(serverName) && isValidMediaId(mediaId) ? { serverName, mediaId } : null;
}

export function formatMxc(serverName: string, mediaId: string): string {
  if (!isValidServerName(serverName)) throw new RangeError(`invalid server name for an mxc URI: ${JSON.stringify(serverName)}`);
  if (!isValidMediaId(mediaId)) throw new RangeError(`invalid media id for an mxc URI: ${JSON.stringify(mediaId)}`);
  return `${MXC_PREFIX}${serverName}/${mediaId}`;
}
