// Pieces every client media route shares: CORS, 405 for a known path, the preview answer.
import type { RequestHandler } from 'express';
import { unrecognized } from '../../matrix/errors.js';

/** URL previews are not implemented: the spec's answer for an unimplemented endpoint. */
export const previewsUnsupported = () => unrecognized('URL previews are not supported by this media repository');

export const methodNotAllowed: RequestHandler = () => {
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
