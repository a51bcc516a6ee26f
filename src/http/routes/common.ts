// Pieces the media routes share: CORS, 405 for a known path, the preview answer.
import type { RequestHandler } from 'express';
import { unrecognized } from '../../matrix/errors.js';

/** URL previews are not implemented: the spec's answer for an unimplemented endpoint. */
export const previewsUnsupported = () => unrecognized('URL previews are not supported by this media repository');

/** 405 M_UNRECOGNIZED (spec), with the Allow header HTTP requires, read off the route it is mounted on. */
export const methodNotAllowed: RequestHandler = (req, res) => {
  const methods = Object.keys((req.route as { methods: Record<string, boolean> }).methods)
    .filter((method) => method !== '_all')
    .map((method) => method.toUpperCase());
  // express answers HEAD wherever it answers GET.
  if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD');
  res.setHeader('Allow', methods.join(', '));
  throw unrecognized('Method not allowed for this endpoint', 405);
};

/** CORS for browser clients (client-server API "Web Browser Clients"); pre-flights end here. */
export const cors: RequestHandler = (req, res, next) => {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PUT, DELETE, OPTIONS');
  res.setHeader('Access-Control-Allow-Headers', 'X-Requested-With, Content-Type, Authorization');
  if (req.method === 'OPTIONS') {
    res.status(204).end();
    return;
  }
  next();
};
