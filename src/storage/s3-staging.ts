// Staging in a bucket: objects uploaded but not yet committed or discarded, and multipart uploads not yet
// completed or aborted. Those of a dead writer (a crash, or S3 down when the abort was sent) cost storage.
import {
  AbortMultipartUploadCommand, DeleteObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client,
} from '@aws-sdk/client-s3';
import type { StagingEntry } from './datastore.js';
import { writerOf } from './staging.js';

export async function* listS3Staging(client: S3Client, bucket: string, stagingPrefix: string): AsyncIterable<StagingEntry> {
  let startAfter: string | undefined;
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: stagingPrefix, StartAfter: startAfter }));
    const contents = page.Contents ?? [];
    for (const object of contents) {
      if (!object.Key) continue;
      yield { name: object.Key, writer: writerOf(object.Key.slice(stagingPrefix.length)), modifiedMs: object.LastModified?.getTime() ?? 0 };
    }
    if (!page.IsTruncated || contents.length === 0) break;
    startAfter = contents[contents.length - 1]!.Key;
  }

  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(new ListMultipartUploadsCommand({
      Bucket: bucket, Prefix: stagingPrefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker,
    }));
    for (const upload of page.Uploads ?? []) {
      if (!upload.Key || !upload.UploadId) continue;
      yield { name: upload.Key, writer: writerOf(upload.Key.slice(stagingPrefix.length)), modifiedMs: upload.Initiated?.getTime() ?? 0, uploadId: upload.UploadId };
    }
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
}

export async function removeS3Staging(client: S3Client, bucket: string, stagingPrefix: string, entry: StagingEntry): Promise<void> {
  // Only ever a key under the staging prefix, whatever the entry says.
  if (!entry.name.startsWith(stagingPrefix)) throw new RangeError('not a staging key');
  if (entry.uploadId === undefined) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: entry.name }));
  else await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: entry.name, UploadId: entry.uploadId }));
}
