// Blobs as objects <prefix><aa>/<bb>/<sha256> in an S3 bucket. Uploads larger than one part stream as
// multipart uploads to a staging key (<prefix>.staging/<writer>.<uuid>) while hashed; commit copies the
// staged object to its content address (S3 has no rename, and the digest is known only at the end), then
// deletes the staging object.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  DatastoreUnavailableError, isSha256Hex, SizeLimitError, stagedBlob, type ByteRange, type Datastore, type RedirectHeaders, type StagedBlob,
  type StagingEntry, type WriteLimits,
} from './datastore.js';
import { feedWithoutDestroying, HashingMeter } from './hashing-meter.js';
import { createS3Client, type S3Options } from './s3-client.js';
import { listS3Staging, removeS3Staging } from './s3-staging.js';
import { stagingName } from './staging.js';

export const STAGING_DIR = '.staging/';
// 5 MiB parts, 4 in flight: at most ~25 MiB of one upload in memory, whatever its size.
const PART_SIZE = 5 * 1024 * 1024;
const QUEUE_SIZE = 4;
/** CopyObject's limit; larger blobs would need UploadPartCopy. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;
const SKIP_COPY_CHECK_BELOW = 8 * 1024 * 1024;

export class S3Datastore implements Datastore {
  readonly client: S3Client;

  /** `writer`: the instance id staging keys are named by. */
  constructor(readonly id: string, readonly options: S3Options, private readonly writer: string = randomUUID()) {
    this.client = createS3Client(options);
  }

  async writeStream(body: Readable, limits: WriteLimits): Promise<StagedBlob> {
    const meter = new HashingMeter(limits.maxBytes, limits.tooLarge ?? (() => new SizeLimitError(limits.maxBytes)));
    let bodyError: unknown;
    meter.once('error', (error) => { bodyError = error; });
    feedWithoutDestroying(body, meter);
    const chunks = meter[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    // Up to one part is held in memory either way (lib-storage buffers a part): a body that ends within
    // it goes straight to its sha256 key at commit, one request instead of upload, copy and delete.
    const head: Buffer[] = [];
    let headBytes = 0;
    while (headBytes < PART_SIZE) {
      const next = await chunks.next();
      if (next.done) return this.heldInMemory(Buffer.concat(head), meter.digestHex());
      head.push(next.value);
      headBytes += next.value.length;
    }
    const key = `${this.stagingPrefix}${stagingName(this.writer)}`;
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.options.bucketName, Key: key, Body: Readable.from(headThenRest(head, chunks)), ...this.storageParams() },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      // On failure the multipart upload is aborted: no parts, no object.
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      meter.destroy();
      // A body that failed (too large, client gone) is the caller's error; anything else is S3's.
      throw bodyError ?? unavailable('upload', error);
    }
    if (meter.bytes > MAX_COPY_BYTES) {
      await this.deleteKey(key);
      throw new SizeLimitError(MAX_COPY_BYTES);
    }
    return this.staged(key, meter.digestHex(), meter.bytes);
  }

  async read(sha256: string, range?: ByteRange): Promise<Readable> {
    try {
      const object = await this.client.send(new GetObjectCommand({
        Bucket: this.options.bucketName, Key: this.keyOf(sha256), Range: range && `bytes=${range.start}-${range.end}`,
      }));
      return object.Body as Readable;
    } catch (error) {
      if (isNotFound(error)) throw new Error(`blob ${sha256} is not in datastore ${this.id}`);
      throw unavailable('read', error);
    }
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucketName, Key: this.keyOf(sha256) }));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw unavailable('check', error);
    }
  }

  async delete(sha256: string): Promise<void> {
    await this.deleteKey(this.keyOf(sha256));
  }

  async *list(): AsyncIterable<string> {
    const { prefix } = this.options;
    // Paged by StartAfter rather than continuation tokens, which some S3-compatible servers mishandle.
    let startAfter: string | undefined;
    for (;;) {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.options.bucketName, Prefix: prefix, StartAfter: startAfter }));
      const contents = page.Contents ?? [];
      for (const { Key } of contents) {
        const name = Key?.slice(prefix.length) ?? '';
        const sha256 = name.slice(6);
        if (isSha256Hex(sha256) && name === `${sha256.slice(0, 2)}/${sha256.slice(2, 4)}/${sha256}`) yield sha256;
      }
      if (!page.IsTruncated || contents.length === 0) return;
      startAfter = contents[contents.length - 1]!.Key;
    }
  }

  async redirectUrl(sha256: string, headers?: RedirectHeaders): Promise<string | undefined> {
    const key = this.keyOf(sha256);
    if (this.options.redirect === 'publicBaseUrl') return `${this.options.publicBaseUrl!.replace(/\/+$/, '')}/${key}`;
    if (this.options.redirect !== 'presigned') return undefined;
    // Signed with the headers the bucket must answer with, so a redirected download keeps them.
    const command = new GetObjectCommand({
      Bucket: this.options.bucketName, Key: key,
      ResponseContentType: headers?.contentType, ResponseContentDisposition: headers?.contentDisposition,
    });
    return getSignedUrl(this.client, command, { expiresIn: this.options.presignExpirySeconds });
  }

  listStaging(): AsyncIterable<StagingEntry> {
    return listS3Staging(this.client, this.options.bucketName, this.stagingPrefix);
  }

  removeStaging(entry: StagingEntry): Promise<void> {
    return removeS3Staging(this.client, this.options.bucketName, this.stagingPrefix, entry);
  }

  private get stagingPrefix(): string {
    return `${this.options.prefix}${STAGING_DIR}`;
  }

  close(): void {
    this.client.destroy();
  }

  private staged(key: string, sha256: string, size: number): StagedBlob {
    return stagedBlob(this.id, sha256, size, {
      publish: async () => {
        // Copying over an existing blob rewrites the same bytes: cheaper than asking first, unless large.
        if (size < SKIP_COPY_CHECK_BELOW || !(await this.has(sha256))) {
          try {
            await this.client.send(new CopyObjectCommand({
              Bucket: this.options.bucketName, Key: this.keyOf(sha256), CopySource: encodeURI(`${this.options.bucketName}/${key}`),
              ...this.storageParams(),
            }));
          } catch (error) {
            throw unavailable('store', error);
          }
        }
      },
      discard: () => this.deleteKey(key),
    });
  }

  private heldInMemory(bytes: Buffer, sha256: string): StagedBlob {
    return stagedBlob(this.id, sha256, bytes.length, {
      publish: async () => {
        try {
          // Writing over an existing blob writes the same bytes.
          await this.client.send(new PutObjectCommand({ Bucket: this.options.bucketName, Key: this.keyOf(sha256), Body: bytes, ...this.storageParams() }));
        } catch (error) {
          throw unavailable('store', error);
        }
      },
      discard: async () => undefined,
    });
  }

  private storageParams(): { StorageClass?: never; ServerSideEncryption?: never; SSEKMSKeyId?: string } {
    const { storageClass, sse } = this.options;
    return {
      ...(storageClass ? { StorageClass: storageClass as never } : {}),
      ...(sse ? { ServerSideEncryption: sse.algorithm as never, SSEKMSKeyId: sse.kmsKeyId } : {}),
    };
  }

  private async deleteKey(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucketName, Key: key }));
    } catch (error) {
      throw unavailable('delete', error);
    }
  }

  private keyOf(sha256: string): string {
    if (!isSha256Hex(sha256)) throw new RangeError('not a sha256 hex digest');
    return `${this.options.prefix}${sha256.slice(0, 2)}/${sha256.slice(2, 4)}/${sha256}`;
  }
}

async function* headThenRest(head: Buffer[], rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield* head;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}

function isNotFound(error: unknown): boolean {
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === 'NoSuchKey' || name === 'NotFound' || $metadata?.httpStatusCode === 404;
}

function unavailable(operation: string, error: unknown): DatastoreUnavailableError {
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = $metadata?.httpStatusCode;
  return new DatastoreUnavailableError(`S3 ${operation} failed: ${name ?? 'error'}${status ? ` (HTTP ${status})` : ''}`, { cause: error });
}
