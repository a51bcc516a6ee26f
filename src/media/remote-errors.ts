// What a client is told when remote media cannot be had, whatever went wrong on the way.
import { RemoteHttpError } from '../federation/client.js';
import { UpstreamError, type UpstreamErrorKind } from '../federation/http.js';
import { MatrixError, notYetUploaded } from '../matrix/errors.js';
import type { CachedFailure } from './remote-store.js';

const UPSTREAM_MESSAGES: Record<UpstreamErrorKind, string> = {
  unreachable: 'Could not fetch the remote content: its server could not be reached',
  blocked: 'Could not fetch the remote content: its server could not be reached',
  timeout: 'The origin server did not answer in time',
  'too-large': 'The remote content is too large',
  'bad-response': 'Could not fetch the remote content: its server answered with something unusable',
  truncated: 'Could not fetch the remote content: the transfer was cut short',
};

/** The Matrix error a client gets for a failed fetch. */
export function toClientError(error: unknown): MatrixError {
  if (error instanceof MatrixError) return error;
  if (error instanceof RemoteHttpError) {
    if (error.status === 404) return new MatrixError(404, 'M_NOT_FOUND', 'Media not found on its origin server');
    if (error.errcode === 'M_NOT_YET_UPLOADED') return notYetUploaded('The remote content has not yet been uploaded');
    if (error.errcode === 'M_TOO_LARGE') return new MatrixError(502, 'M_TOO_LARGE', 'The remote content is too large');
    return new MatrixError(502, 'M_UNKNOWN', `The origin server answered ${error.status}${error.errcode ? ` ${error.errcode}` : ''}`);
  }
  if (error instanceof UpstreamError) {
    if (error.kind === 'too-large') return new MatrixError(502, 'M_TOO_LARGE', 'The remote content is too large');
    if (error.kind === 'timeout') return new MatrixError(504, 'M_UNKNOWN', 'The origin server did not answer in time');
    // The detail (addresses, the filter's verdict) goes to the log only: a client learns nothing of our network.
    return new MatrixError(502, 'M_UNKNOWN', UPSTREAM_MESSAGES[error.kind]);
  }
  return new MatrixError(502, 'M_UNKNOWN', 'Could not fetch the remote content');
}

/** A failure answered without contacting the remote: a cached failure, or the destination's back-off. */
export class NotAttempted extends MatrixError {
  constructor(failure: CachedFailure) {
    super(failure.status, failure.errcode as MatrixError['errcode'], failure.error);
  }
}

/** Our own wait ran out: another fetch (here or on another instance) has not delivered yet. */
export const notAvailableYet = () => notYetUploaded('The remote content is not available yet');

export function waitAtMost<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(notAvailableYet()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
