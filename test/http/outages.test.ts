// A database that is gone answers 503 with a Matrix error and Retry-After, logged once per outage; node's
// HTTP parser refusals get a Matrix JSON body with their 431/400.
import { connect } from 'node:net';
import { OutageLog, unavailableDependency } from '../../src/http/outages.js';
import { createLogger } from '../../src/log.js';
import type { RunningService } from '../../src/service.js';
import { openTestDatabase } from '../helpers/database.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestService } from '../helpers/service-under-test.js';

describe('database unreachable', () => {
  let service: RunningService;
  const lines: string[] = [];
  beforeAll(async () => {
    const db = await openTestDatabase();
    service = await startTestService({ logLevel: 'info', homeservers: [{ name: 'a.example', clientApi: 'http://127.0.0.1:1' }] }, { db, logLines: lines });
    // The pool is gone: every query now fails as with a database that went away.
    await db.close();
  });
  afterAll(async () => {
    // closeServices closes the database again: harmless, it is already closed.
    await service.close().catch(() => undefined);
  });

  test('503 M_UNKNOWN with Retry-After, and one log line for twenty failed requests', async () => {
    for (let i = 0; i < 20; i++) {
      const res = await rawRequest(`${service.url}/_matrix/media/v3/download/a.example/someMedia${i}`, { headers: { Host: 'a.example' } });
      expect(res.status).toBe(503);
      expect(res.json()).toMatchObject({ errcode: 'M_UNKNOWN', error: 'The database is unreachable: retry later', retry_after_ms: 5000 });
      expect(res.headers['retry-after']).toBe('5');
    }
    expect((await rawRequest(`${service.url}/healthz`)).status).toBe(503);
    const errors = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => (l.level as number) >= 50);
    expect(errors).toEqual([expect.objectContaining({ dependency: 'database', msg: expect.stringContaining('database unreachable') })]);
  });
});

describe('what counts as an outage', () => {
  const errno = (code: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(code), { code, ...extra });

  test.each([
    ['a refused connection to the database', errno('ECONNREFUSED', { syscall: 'connect', address: '127.0.0.1', port: 5432 }), 'database'],
    ['PostgreSQL shutting down', errno('57P01'), 'database'],
    ['a pool that cannot connect in time', Object.assign(new Error('Knex: Timeout acquiring a connection'), { name: 'KnexTimeoutError' }), 'database'],
    ['a disk error in a datastore', errno('EIO', { syscall: 'read', path: '/media/ab/cd' }), 'datastore'],
    ['a full datastore', errno('ENOSPC', { syscall: 'write', path: '/media/.tmp/x' }), 'datastore'],
    ['a client that hung up mid-upload', errno('ECONNRESET'), undefined],
    ['a unique violation', errno('23505'), undefined],
    ['a missing file', errno('ENOENT', { syscall: 'open', path: '/media/ab/cd' }), undefined],
  ])('%s', (_what, error, dependency) => {
    expect(unavailableDependency(error)).toBe(dependency);
  });

  test('one line when an outage starts, none while it lasts, one again after 30 s of quiet', () => {
    const lines: string[] = [];
    let now = 0;
    const counted: string[] = [];
    const outages = new OutageLog(createLogger('info', { write: (l: string) => lines.push(l) }), (d) => counted.push(d), () => now);
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', syscall: 'connect' });
    for (let i = 0; i < 50; i++, now += 500) outages.report('database', refused);
    expect(lines).toHaveLength(1);
    now += 31_000;
    outages.report('database', refused);
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1]!)).toMatchObject({ dependency: 'database', code: 'ECONNREFUSED', failuresInPreviousOutage: 49 });
    expect(counted).toHaveLength(51);
  });
});

describe('requests the HTTP parser refuses', () => {
  let service: RunningService;
  beforeAll(async () => {
    service = await startTestService({ homeservers: [{ name: 'a.example', clientApi: 'http://127.0.0.1:1' }] });
  });
  afterAll(() => service.close());

  function raw(bytes: string): Promise<string> {
    const { hostname, port } = new URL(service.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => socket.write(bytes));
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    });
  }

  const parse = (response: string) => {
    const [head, body] = response.split('\r\n\r\n', 2) as [string, string];
    return { status: Number(head.split(' ')[1]), contentType: /content-type: ([^\r]+)/i.exec(head)?.[1], json: JSON.parse(body) as Record<string, unknown> };
  };

  test('headers over the limit: 431 with a Matrix error body', async () => {
    const response = parse(await raw(`GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`));
    expect(response).toEqual({ status: 431, contentType: 'application/json', json: { errcode: 'M_UNKNOWN', error: 'The request headers are too large' } });
  });

  test.each([
    ['a bad method', 'G@T /healthz HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['bad framing', 'GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['not HTTP at all', 'hello there\r\n\r\n'],
  ])('%s: 400 with a Matrix error body', async (_what, bytes) => {
    const response = parse(await raw(bytes));
    expect(response.status).toBe(400);
    expect(response.contentType).toBe('application/json');
    expect(response.json).toMatchObject({ errcode: 'M_UNKNOWN' });
  });
});
