// Staging leftovers in a bucket: objects uploaded but never committed or discarded, and multipart
// uploads never completed or aborted (a crash, or S3 down when the abort was sent). Both cost storage.
import {
  AbortMultipartUploadCommand, DeleteObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client,
} from '@aws-sdk/client-s3';
import type { StagingSweep } from './datastore.js';

export async function sweepS3Staging(client: S3Client, bucket: string, stagingPrefix: string, olderThanMs: number): Promise<StagingSweep> {
  const cutoff = Date.now() - olderThanMs;
  let staged = 0;
  let uploads = 0;
  let startAfter: string | undefined;
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: stagingPrefix, StartAfter: startAfter }));
    const contents = page.Contents ?? [];
    for (const object of contents) {
      if (!object.Key || (object.LastModified?.getTime() ?? 0) > cutoff) continue;
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key }));
      staged++;
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
      if (!upload.Key || !upload.UploadId || (upload.Initiated?.getTime() ?? 0) > cutoff) continue;
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
      uploads++;
    }
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
  return { staged, uploads };
}
