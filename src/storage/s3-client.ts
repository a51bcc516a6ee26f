// The S3 client of one datastore, from its options; credentials arrive already read from their Secret.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';

export interface S3Options {
  /** e.g. https://s3.eu-central-1.amazonaws.com or http://127.0.0.1:9000; unset: AWS's own for the region. */
  endpoint?: string;
  region: string;
  bucketName: string;
  /** Prepended to every key, e.g. "media/"; lets several datastores or services share one bucket. */
  prefix: string;
  /** Path-style (endpoint/bucket/key: MinIO, Ceph, s3rver) instead of virtual-host (bucket.endpoint/key). */
  forcePathStyle: boolean;
  /** Unset: the SDK's own chain (AWS_ACCESS_KEY_ID..., instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  storageClass?: string;
  sse?: { algorithm: 'AES256' | 'aws:kms'; kmsKeyId?: string };
  redirect: 'off' | 'presigned' | 'publicBaseUrl';
  presignExpirySeconds: number;
  publicBaseUrl?: string;
  /** Attempts per S3 request, the first included (the SDK backs off between them). */
  maxAttempts: number;
  /** Connecting, or a socket silent this long, fails the S3 request. */
  timeoutMs: number;
}

export function createS3Client(options: S3Options): S3Client {
  // keep-alive sockets to the one endpoint; enough for many concurrent streams.
  const agentOptions = { keepAlive: true, maxSockets: 256 };
  return new S3Client({
    endpoint: options.endpoint,
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    credentials: options.credentials,
    maxAttempts: options.maxAttempts,
    // Only when the server asks: s3rver and older S3-compatible stores reject the new checksum headers.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: options.timeoutMs,
      // Idle time, not total: a 1 GiB stream may take long, a stalled one fails.
      socketTimeout: options.timeoutMs,
    },
  });
}
