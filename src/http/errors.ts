// Every error leaves as Matrix error JSON; unknown routes are 404 M_UNRECOGNIZED.
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { Logger } from '../log.js';
import { MatrixError } from '../matrix/errors.js';
import { SizeLimitError } from '../storage/datastore.js';
import { OutageLog, unavailableDependency, unavailableError } from './outages.js';

export const unrecognizedRoute: RequestHandler = (_req, _res, next) => {
  next(new MatrixError(404, 'M_UNRECOGNIZED', 'Unrecognized request'));
};

export function errorHandler(log: Logger, outages: OutageLog = new OutageLog(log)): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    if (clientWentAway(res, error)) {
      log.debug({ method: req.method, path: req.path }, 'client went away before the response was complete');
      res.destroy();
      return;
    }
    const dependency = unavailableDependency(error);
    if (dependency) outages.report(dependency, error);
    const matrixError = dependency ? unavailableError(dependency) : toMatrixError(error);
    // Our own 5xx answers (a remote that failed, a homeserver down) were logged where they arose: no stack here.
    if (!dependency && !(error instanceof MatrixError) && matrixError.status >= 500) log.error({ err: error, method: req.method, path: req.path }, 'request failed');
    if (res.headersSent) {
      // The body has started: the only honest signal left is to cut the connection.
      res.destroy();
      return;
    }
    if ((matrixError.status === 429 || matrixError.status === 503) && typeof matrixError.extra.retry_after_ms === 'number') {
      res.setHeader('Retry-After', String(Math.ceil(matrixError.extra.retry_after_ms / 1000)));
    }
    res.status(matrixError.status).json(matrixError.toJSON());
  };
}

/**
 * The response was cut by the client, not failed by us: its stream closed early, or its connection reset
 * before we wrote (a dependency's reset carries a syscall, see outages).
 */
export function clientWentAway(res: Response, error: unknown): boolean {
  const { code, syscall } = error as NodeJS.ErrnoException;
  if (!res.destroyed || res.writableFinished) return false;
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || (syscall === undefined && (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED'));
}

export function toMatrixError(error: unknown): MatrixError {
  if (error instanceof MatrixError) return error;
  if (error instanceof SizeLimitError) return new MatrixError(413, 'M_TOO_LARGE', error.message);
  const http = error as { type?: string; status?: number; statusCode?: number };
  // body-parser's own errors carry a status and a type.
  if (http.type === 'entity.parse.failed') return new MatrixError(400, 'M_NOT_JSON', 'The request body is not valid JSON');
  if (http.type === 'entity.too.large') return new MatrixError(413, 'M_TOO_LARGE', 'The request body is too large');
  const status = http.status ?? http.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return new MatrixError(status, 'M_UNKNOWN', 'Bad request');
  return new MatrixError(500, 'M_UNKNOWN', 'Internal server error');
}
