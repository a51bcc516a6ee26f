// A Matrix error: the errcode and HTTP status the spec gives, rendered as {"errcode","error",...}.

export type MatrixErrcode =
  | 'M_UNRECOGNIZED' | 'M_NOT_FOUND' | 'M_FORBIDDEN' | 'M_UNAUTHORIZED' | 'M_MISSING_TOKEN'
  | 'M_UNKNOWN_TOKEN' | 'M_LIMIT_EXCEEDED' | 'M_TOO_LARGE' | 'M_NOT_YET_UPLOADED'
  | 'M_CANNOT_OVERWRITE_MEDIA' | 'M_UNKNOWN' | 'M_BAD_JSON' | 'M_NOT_JSON' | 'M_MISSING_PARAM'
  | 'M_INVALID_PARAM' | 'M_USER_LIMIT_EXCEEDED' | 'M_RESOURCE_LIMIT_EXCEEDED';

export class MatrixError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: MatrixErrcode,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'MatrixError';
  }

  toJSON(): Record<string, unknown> {
    return { ...this.extra, errcode: this.errcode, error: this.message };
  }
}

export const notFound = (message: string) => new MatrixError(404, 'M_NOT_FOUND', message);
export const unrecognized = (message: string, status = 404) =>
  new MatrixError(status, 'M_UNRECOGNIZED', message);
export const forbidden = (message: string) => new MatrixError(403, 'M_FORBIDDEN', message);
export const invalidParam = (message: string) => new MatrixError(400, 'M_INVALID_PARAM', message);
export const missingParam = (message: string) => new MatrixError(400, 'M_MISSING_PARAM', message);
export const unknown = (status: number, message: string) => new MatrixError(status, 'M_UNKNOWN', message);
/** Media whose bytes have not arrived in time (async uploads, remote fetches still starting). */
export const notYetUploaded = (message = 'Content has not yet been uploaded') => new MatrixError(504, 'M_NOT_YET_UPLOADED', message);
