// What a client is told for each way a remote fetch can fail: the spec's status and errcode, and a message
// that names the failure (never an empty one); and how long `waitAtMost` lets a client wait.
import { RemoteHttpError } from '../../src/federation/client.js';
import { UpstreamError, type UpstreamErrorKind } from '../../src/federation/http.js';
import { MatrixError } from '../../src/matrix/errors.js';
import { NotAttempted, toClientError, waitAtMost } from '../../src/media/remote-errors.js';

const answered = (status: number, errcode?: string) => new RemoteHttpError(status, errcode, errcode ? { errcode } : {}, `remote answered ${status}`);
const shape = (error: MatrixError) => ({ status: error.status, errcode: error.errcode, error: error.message });

describe('toClientError', () => {
  test('a Matrix error (ours, or a cached one) goes to the client unchanged', () => {
    const own = new MatrixError(403, 'M_FORBIDDEN', 'not for you');
    expect(toClientError(own)).toBe(own);
    const cached = new NotAttempted({ status: 502, errcode: 'M_UNKNOWN', error: 'remembered' });
    expect(shape(toClientError(cached))).toEqual({ status: 502, errcode: 'M_UNKNOWN', error: 'remembered' });
  });

  test.each<[number, string | undefined, number, string, string]>([
    [404, 'M_NOT_FOUND', 404, 'M_NOT_FOUND', 'Media not found on its origin server'],
    [404, undefined, 404, 'M_NOT_FOUND', 'Media not found on its origin server'],
    [504, 'M_NOT_YET_UPLOADED', 504, 'M_NOT_YET_UPLOADED', 'The remote content has not yet been uploaded'],
    [413, 'M_TOO_LARGE', 502, 'M_TOO_LARGE', 'The remote content is too large'],
    [500, 'M_UNKNOWN', 502, 'M_UNKNOWN', 'The origin server answered 500 M_UNKNOWN'],
    [403, undefined, 502, 'M_UNKNOWN', 'The origin server answered 403'],
  ])('an origin that answered %i %s', (remoteStatus, remoteErrcode, status, errcode, message) => {
    expect(shape(toClientError(answered(remoteStatus, remoteErrcode)))).toEqual({ status, errcode, error: message });
  });

  const unreachable = 'Could not fetch the remote content: its server could not be reached';
  test.each<[UpstreamErrorKind, number, string, string]>([
    ['too-large', 502, 'M_TOO_LARGE', 'The remote content is too large'],
    ['timeout', 504, 'M_UNKNOWN', 'The origin server did not answer in time'],
    ['unreachable', 502, 'M_UNKNOWN', unreachable],
    ['blocked', 502, 'M_UNKNOWN', unreachable],
    ['bad-response', 502, 'M_UNKNOWN', 'Could not fetch the remote content: its server answered with something unusable'],
    ['truncated', 502, 'M_UNKNOWN', 'Could not fetch the remote content: the transfer was cut short'],
  ])('an upstream failure of kind %s, its detail kept from the client', (kind, status, errcode, message) => {
    const error = new UpstreamError(kind, 'refusing to connect to ssrf.test: 127.0.0.1 is in a blocked IP range');
    expect(shape(toClientError(error))).toEqual({ status, errcode, error: message });
  });

  test('anything else: 502 M_UNKNOWN without its detail', () => {
    expect(shape(toClientError(new Error('ECONNRESET 10.0.0.1')))).toEqual({ status: 502, errcode: 'M_UNKNOWN', error: 'Could not fetch the remote content' });
  });
});

describe('waitAtMost', () => {
  test('a promise settled in time gives its value or its error', async () => {
    await expect(waitAtMost(Promise.resolve('bytes'), 1000)).resolves.toBe('bytes');
    await expect(waitAtMost(Promise.reject(new Error('failed')), 1000)).rejects.toThrow('failed');
  });

  test('a wait that ended leaves no timer behind to hold the process open', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const before = timers();
    await waitAtMost(Promise.resolve('bytes'), 60_000);
    expect(timers()).toBe(before);
  });

  test('past the wait: 504 M_NOT_YET_UPLOADED, after the wait and not before', async () => {
    const started = Date.now();
    const error = await waitAtMost(new Promise(() => undefined), 200).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(shape(error as MatrixError)).toEqual({ status: 504, errcode: 'M_NOT_YET_UPLOADED', error: 'The remote content is not available yet' });
  });
});
