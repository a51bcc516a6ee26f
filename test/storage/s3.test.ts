// The S3 datastore against a real S3-protocol server (s3rver) on loopback; digests checked with node:crypto.
import { createHash, randomUUID } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { CreateMultipartUploadCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { DatastoreUnavailableError, SizeLimitError } from '../../src/storage/datastore.js';
import type { S3Options } from '../../src/storage/s3-client.js';
import { S3Datastore } from '../../src/storage/s3.js';
import { sweepStaging } from '../../src/storage/staging.js';
import { startS3Server, S3_TEST_CREDENTIALS, type TestS3Server } from '../helpers/s3-server.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const MiB = 1024 * 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function patterned(size: number, seed = 0): Buffer {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + seed) % 251;
  return bytes;
}

describe('S3Datastore', () => {
  let server: TestS3Server;
  let prefixCount = 0;
  const storeOptions = (overrides: Partial<S3Options> = {}): S3Options => ({
    endpoint: server.endpoint, region: 'us-east-1', bucketName: server.bucket, prefix: `t${prefixCount++}/`, forcePathStyle: true,
    credentials: { accessKeyId: S3_TEST_CREDENTIALS.accessKeyId, secretAccessKey: S3_TEST_CREDENTIALS.accessSecret },
    redirect: 'off', presignExpirySeconds: 60, maxAttempts: 1, timeoutMs: 5000, ...overrides,
  });
  let store: S3Datastore;
  /** Every key under the store's prefix, staging included. */
  const allKeys = async (s = store) => {
    const page = await s.client.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: s.options.prefix }));
    return (page.Contents ?? []).map((o) => o.Key!.slice(s.options.prefix.length)).sort();
  };

  beforeAll(async () => { server = await startS3Server(); });
  afterAll(async () => { await server.close(); });
  beforeEach(() => { store = new S3Datastore('s3', storeOptions()); });
  afterEach(() => store.close());

  test('streams a multipart upload while hashing; committed, it is readable under its sha256, whole or by range', async () => {
    const bytes = patterned(12 * MiB + 3);
    const staged = await store.writeStream(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), { maxBytes: 20 * MiB });
    expect(staged).toMatchObject({ datastoreId: 's3', sha256: sha256(bytes), size: bytes.length });
    expect(await store.has(staged.sha256)).toBe(false);
    await staged.commit();
    expect(await store.has(staged.sha256)).toBe(true);
    // The staging object is gone: only the content-addressed key is left.
    expect(await allKeys()).toEqual([`${staged.sha256.slice(0, 2)}/${staged.sha256.slice(2, 4)}/${staged.sha256}`]);
    expect(sha256(await readAll(await store.read(staged.sha256)))).toBe(staged.sha256);
    expect(await readAll(await store.read(staged.sha256, { start: 6 * MiB - 5, end: 6 * MiB + 4 }))).toEqual(bytes.subarray(6 * MiB - 5, 6 * MiB + 5));
    expect(server.openUploads(store.options.prefix)).toEqual([]);
  });

  test('a body within one part is held until commit, then put straight to its sha256 key', async () => {
    const bytes = patterned(100_000);
    const staged = await store.writeStream(Readable.from([bytes]), { maxBytes: MiB });
    expect(await allKeys()).toEqual([]);
    await staged.commit();
    expect(await allKeys()).toEqual([`${staged.sha256.slice(0, 2)}/${staged.sha256.slice(2, 4)}/${staged.sha256}`]);
    expect(await readAll(await store.read(staged.sha256))).toEqual(bytes);
  });

  test('identical bytes are stored once; list yields committed blobs only; an empty body is a blob', async () => {
    const one = Buffer.from('one');
    for (let i = 0; i < 2; i++) await (await store.writeStream(Readable.from([one]), { maxBytes: 100 })).commit();
    const empty = await store.writeStream(Readable.from([]), { maxBytes: 100 });
    await empty.commit();
    const stagedOnly = await store.writeStream(Readable.from([Buffer.from('staged only')]), { maxBytes: 100 });
    const listed: string[] = [];
    for await (const digest of store.list()) listed.push(digest);
    expect(listed.sort()).toEqual([sha256(one), sha256(Buffer.alloc(0))].sort());
    expect(await readAll(await store.read(empty.sha256))).toEqual(Buffer.alloc(0));
    await stagedOnly.discard();
    expect((await allKeys()).filter((k) => k.startsWith('.staging/'))).toEqual([]);
  });

  test('past maxBytes a multipart upload is aborted: SizeLimitError, no object, no open upload, source undestroyed', async () => {
    const source = new PassThrough();
    const writing = store.writeStream(source, { maxBytes: 11 * MiB });
    for (let i = 0; i < 12; i++) source.write(patterned(MiB, i));
    const error = await writing.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(SizeLimitError);
    expect(await allKeys()).toEqual([]);
    expect(server.openUploads(store.options.prefix)).toEqual([]);
    expect(source.destroyed).toBe(false);
  });

  test('a body that fails midway (client gone) leaves no object and no open upload', async () => {
    const source = new PassThrough();
    const writing = store.writeStream(source, { maxBytes: 100 * MiB });
    for (let i = 0; i < 7; i++) source.write(patterned(MiB, i));
    setTimeout(() => source.destroy(new Error('client went away')), 50);
    expect(await writing.then(() => undefined, (e: unknown) => (e as Error).message)).toBe('client went away');
    expect(await allKeys()).toEqual([]);
    expect(server.openUploads(store.options.prefix)).toEqual([]);
  });

  test('the staging sweep removes a dead writer\'s staging at once, never a live writer\'s nor committed blobs', async () => {
    const writer = randomUUID();
    const dead = randomUUID();
    const mine = new S3Datastore('s3', { ...store.options }, writer);
    const kept = await mine.writeStream(Readable.from([Buffer.from('kept')]), { maxBytes: 100 });
    await kept.commit();
    // Past one part, so staged in the bucket (a smaller body waits in memory until commit).
    await mine.writeStream(Readable.from([patterned(6 * MiB)]), { maxBytes: 10 * MiB });
    const staging = `${store.options.prefix}.staging/`;
    await store.client.send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: `${staging}${dead}.${randomUUID()}` }));
    await store.client.send(new PutObjectCommand({ Bucket: server.bucket, Key: `${staging}${dead}.${randomUUID()}`, Body: 'x' }));
    // Named by no writer (an older version's): only past its age.
    await store.client.send(new PutObjectCommand({ Bucket: server.bucket, Key: `${staging}unnamed`, Body: 'y' }));
    // Outside the staging area: not ours to sweep.
    await store.client.send(new PutObjectCommand({ Bucket: server.bucket, Key: `${store.options.prefix}notes.txt`, Body: 'x' }));
    const owners = (live: string[], unnamedOlderThanMs = 24 * 3600_000) => ({ live: async () => new Set(live), unnamedOlderThanMs });
    expect(await sweepStaging(mine, owners([writer, dead]))).toEqual({ staged: 0, uploads: 0 });
    expect(await sweepStaging(mine, owners([writer]))).toEqual({ staged: 1, uploads: 1 });
    const staged = (await allKeys()).filter((key) => key.startsWith('.staging/')).sort();
    expect(staged).toEqual([expect.stringMatching(new RegExp(`^\\.staging/${writer}\\.`)), '.staging/unnamed']);
    expect(await sweepStaging(mine, owners([], 0))).toEqual({ staged: 2, uploads: 0 });
    expect(await allKeys()).toEqual([`${kept.sha256.slice(0, 2)}/${kept.sha256.slice(2, 4)}/${kept.sha256}`, 'notes.txt']);
    expect(server.openUploads(store.options.prefix)).toEqual([]);
    mine.close();
  });

  test('presigned redirects serve the bytes with the signed content type and disposition; publicBaseUrl is a plain URL', async () => {
    const presigning = new S3Datastore('s3', storeOptions({ redirect: 'presigned' }));
    const bytes = Buffer.from('redirected bytes');
    const staged = await presigning.writeStream(Readable.from([bytes]), { maxBytes: 100 });
    await staged.commit();
    const url = await presigning.redirectUrl(staged.sha256, { contentType: 'text/plain', contentDisposition: 'attachment; filename="a.txt"' });
    expect(url).toMatch(/X-Amz-Expires=60/);
    const response = await fetch(url!);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(bytes);
    expect(response.headers.get('content-type')).toBe('text/plain');
    expect(response.headers.get('content-disposition')).toBe('attachment; filename="a.txt"');
    presigning.close();
    const cdn = new S3Datastore('s3', storeOptions({ redirect: 'publicBaseUrl', publicBaseUrl: 'https://cdn.example/media/', prefix: 'p/' }));
    expect(await cdn.redirectUrl(staged.sha256)).toBe(`https://cdn.example/media/p/${staged.sha256.slice(0, 2)}/${staged.sha256.slice(2, 4)}/${staged.sha256}`);
    expect(await store.redirectUrl(staged.sha256)).toBeUndefined();
    cdn.close();
  });

  test('S3 unreachable: every operation fails with DatastoreUnavailableError, naming no credential', async () => {
    const down = new S3Datastore('s3', storeOptions({ endpoint: 'http://127.0.0.1:1' }));
    const digest = sha256(Buffer.from('x'));
    for (const attempt of [
      // A small body waits in memory: storing it is what fails.
      async () => (await down.writeStream(Readable.from([Buffer.from('x')]), { maxBytes: 10 })).commit(),
      () => down.writeStream(Readable.from([patterned(6 * MiB)]), { maxBytes: 10 * MiB }), () => down.read(digest), () => down.has(digest), () => down.delete(digest),
    ]) {
      const error = await attempt().then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(DatastoreUnavailableError);
      expect(String((error as Error).message)).not.toContain(S3_TEST_CREDENTIALS.accessSecret);
    }
    down.close();
  });
});
