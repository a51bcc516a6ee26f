// Query and path parameters of the media endpoints, checked before anything else looks at them.
import type { Request } from 'express';
import { invalidParam, missingParam } from '../matrix/errors.js';
import { isValidMediaId } from '../matrix/mxc.js';
import { isValidServerName } from '../matrix/server-name.js';
import type { ThumbnailSpec } from '../matrix/thumbnail-spec.js';

/** The spec's default for timeout_ms. */
const DEFAULT_TIMEOUT_MS = 20_000;
const MAX_UPLOAD_NAME_LENGTH = 1024;
const MEDIA_TYPE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*;[\x20-\x7e\t]*)?$/;
const MAX_CONTENT_TYPE_LENGTH = 255;
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

export interface MediaPath {
  serverName: string;
  mediaId: string;
}

/** The (serverName, mediaId) of a media path: only the grammars' characters ever go further. */
export function mediaPath(req: Request): MediaPath {
  const { serverName, mediaId } = req.params as Record<string, string | undefined>;
  if (serverName === undefined || !isValidServerName(serverName)) throw invalidParam('Invalid server name');
  if (mediaId === undefined || !isValidMediaId(mediaId)) throw invalidParam('Invalid media ID');
  return { serverName, mediaId };
}

/** The file name a download path may end with (it replaces the uploaded name in Content-Disposition). */
export function fileNameParam(req: Request): string | undefined {
  const value: unknown = req.params.fileName;
  return typeof value === 'string' ? value : undefined;
}

/** A single query value; repeated parameters are refused rather than guessed at. */
function queryValue(req: Request, name: string): string | undefined {
  const value: unknown = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidParam(`"${name}" must be given once`);
  return value;
}

/** timeout_ms, defaulted and capped at the configured maximum. */
export function timeoutMs(req: Request, maxMs: number): number {
  const value = queryValue(req, 'timeout_ms');
  if (value === undefined) return Math.min(DEFAULT_TIMEOUT_MS, maxMs);
  if (!/^\d{1,15}$/.test(value)) throw invalidParam('"timeout_ms" must be a non-negative integer');
  return Math.min(Number(value), maxMs);
}

export function booleanParam(req: Request, name: string, fallback: boolean): boolean {
  const value = queryValue(req, name);
  if (value === undefined) return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalidParam(`"${name}" must be true or false`);
}

export function thumbnailParams(req: Request): ThumbnailSpec {
  const method = queryValue(req, 'method') ?? 'scale';
  if (method !== 'crop' && method !== 'scale') throw invalidParam('"method" must be crop or scale');
  return { width: dimension(req, 'width'), height: dimension(req, 'height'), method, animated: booleanParam(req, 'animated', false) };
}

function dimension(req: Request, name: string): number {
  const value = queryValue(req, name);
  if (value === undefined) throw missingParam(`"${name}" is required`);
  if (!/^\d{1,9}$/.test(value) || Number(value) === 0) throw invalidParam(`"${name}" must be a positive integer`);
  return Number(value);
}

/** The upload's Content-Type: a media type, or the spec's default when absent. */
export function uploadContentType(req: Request): string {
  const value = req.headers['content-type'];
  if (value === undefined || value.trim() === '') return 'application/octet-stream';
  const type = value.trim();
  if (type.length > MAX_CONTENT_TYPE_LENGTH || !MEDIA_TYPE.test(type)) throw invalidParam('Content-Type is not a valid media type');
  return type;
}

/** The upload's ?filename=, kept as given; control characters cannot be part of a file name. */
export function uploadName(req: Request): string | null {
  const value = queryValue(req, 'filename');
  if (value === undefined || value === '') return null;
  if (value.length > MAX_UPLOAD_NAME_LENGTH) throw invalidParam(`"filename" is longer than ${MAX_UPLOAD_NAME_LENGTH} characters`);
  if (CONTROL_CHARS.test(value)) throw invalidParam('"filename" contains control characters');
  return value;
}

/** The declared body length, if any. */
export function contentLength(req: Request): number | undefined {
  const value = req.headers['content-length'];
  return value === undefined ? undefined : Number(value);
}
