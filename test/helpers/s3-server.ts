// A real S3-protocol server (s3rver) on loopback, with the two calls it lacks and the service uses:
// ListMultipartUploads and AbortMultipartUpload, answered from s3rver's own upload folders. Its
// ListObjectsV2 makes continuation tokens with DES, which OpenSSL 3 refuses (a 500 past 1,000 keys):
// V2 listings are answered by its V1 code, StartAfter as Marker, which our paging needs.
import { mkdtempSync, readdirSync, rmSync, statSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Datastore } from '../../src/storage/s3.js';

interface KoaContext {
  method: string; path: string; query: Record<string, string | undefined>; querystring: string; status: number; body: unknown; type: string;
}
interface S3rverApp {
  middleware: Array<(ctx: KoaContext, next: () => Promise<void>) => Promise<void>>;
  store: { getResourcePath(bucket: string, key: string | undefined, resource: string): string };
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverApp;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;

/** s3rver checks signatures against these. */
export const S3_TEST_CREDENTIALS = { accessKeyId: 'S3RVER', accessSecret: 'S3RVER' };

export interface TestS3Server {
  endpoint: string;
  bucket: string;
  port: number;
  /** Multipart uploads begun and neither completed nor aborted, under `prefix`. */
  openUploads(prefix?: string): string[];
  close(): Promise<void>;
}

export async function startS3Server(options: { port?: number } = {}): Promise<TestS3Server> {
  const directory = mkdtempSync(join(tmpdir(), 's3rver-'));
  const bucket = 'media';
  const app = new S3rver({ address: '127.0.0.1', port: options.port ?? 0, silent: true, directory, configureBuckets: [{ name: bucket }],
    // The V2 -> V1 rewrite below changes the signed query string.
    allowMismatchedSignatures: true });
  const uploadsDir = () => app.store.getResourcePath(bucket, undefined, 'uploads');
  const uploads = () => {
    try {
      return readdirSync(uploadsDir()).map((id) => {
        const dir = join(uploadsDir(), id);
        return { id, key: readFileSync(join(dir, 'key'), 'utf8'), initiated: statSync(join(dir, 'key')).mtime };
      });
    } catch {
      return [];
    }
  };
  app.middleware.unshift(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path.replace(/\/$/, '') === `/${bucket}` && 'uploads' in ctx.query) {
      const prefix = ctx.query.prefix ?? '';
      const rows = uploads().filter((u) => u.key.startsWith(prefix))
        .map((u) => `<Upload><Key>${u.key}</Key><UploadId>${u.id}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated></Upload>`);
      ctx.type = 'application/xml';
      ctx.body = `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>${bucket}</Bucket><IsTruncated>false</IsTruncated>${rows.join('')}</ListMultipartUploadsResult>`;
      return;
    }
    if (ctx.method === 'GET' && ctx.query['list-type'] === '2') {
      const params = new URLSearchParams(ctx.querystring);
      params.delete('list-type');
      const startAfter = params.get('start-after');
      params.delete('start-after');
      if (startAfter !== null) params.set('marker', startAfter);
      ctx.querystring = params.toString();
    }
    const uploadId = ctx.query.uploadId;
    if (ctx.method === 'DELETE' && uploadId !== undefined && ctx.path.startsWith(`/${bucket}/`)) {
      if (!/^[0-9a-f]+$/.test(uploadId)) throw new Error('bad upload id');
      rmSync(join(uploadsDir(), uploadId), { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    await next();
  });
  const address = await app.run();
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    bucket,
    port: address.port,
    openUploads: (prefix = '') => uploads().filter((u) => u.key.startsWith(prefix)).map((u) => u.key),
    close: async () => {
      await app.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** A datastore config entry on `server`, under a prefix of its own so tests sharing a bucket stay apart. */
export function s3DatastoreConfig(server: Pick<TestS3Server, 'endpoint' | 'bucket'>, options: { id?: string; prefix?: string; forKinds?: string[]; opts?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    id: options.id ?? 's3',
    type: 's3',
    forKinds: options.forKinds ?? ['all'],
    opts: {
      endpoint: server.endpoint,
      bucketName: server.bucket,
      forcePathStyle: true,
      prefix: options.prefix ?? `${randomBytes(6).toString('hex')}/`,
      ...S3_TEST_CREDENTIALS,
      // Failures surface quickly in tests; retries are exercised on purpose where they matter.
      timeoutMs: 5000,
      ...options.opts,
    },
  };
}

/** An S3 datastore's committed blobs (sha256s, sorted), and its staging objects and unfinished multipart uploads. */
export async function s3Listing(store: S3Datastore, server: Pick<TestS3Server, 'openUploads'>): Promise<{ blobs: string[]; staged: string[] }> {
  const blobs: string[] = [];
  for await (const sha256 of store.list()) blobs.push(sha256);
  const stagingPrefix = `${store.options.prefix}.staging/`;
  const page = await store.client.send(new ListObjectsV2Command({ Bucket: store.options.bucketName, Prefix: stagingPrefix }));
  const uploads = server.openUploads(stagingPrefix).map((key) => `upload:${key}`);
  return { blobs: blobs.sort(), staged: [...(page.Contents ?? []).map((o) => o.Key!), ...uploads] };
}
