// Config datastores -> what the storage layer opens: secrets read here, so credentials exist only in
// the S3 client (never in logs or errors).
import { readSecret, type DatastoreConfig } from './config/config.js';
import type { DatastoreDefinition } from './storage/datastores.js';

export function datastoreDefinitions(configs: readonly DatastoreConfig[]): DatastoreDefinition[] {
  return configs.map((ds): DatastoreDefinition => {
    if (ds.type === 'file') {
      const offload = ds.opts.proxyOffload;
      const link = offload?.secureLink;
      const secureLink = link && { ...link, secret: readSecret(link.secret, `datastores ${ds.id} opts.proxyOffload.secureLink.secret`) };
      return { ...ds, opts: { path: ds.opts.path, proxyOffload: offload && { ...offload, secureLink } } };
    }
    const { accessKeyId, accessSecret, sse, kmsKeyId, ...opts } = ds.opts;
    const where = `datastores ${ds.id} opts`;
    return {
      ...ds,
      opts: {
        ...opts,
        credentials: accessKeyId === undefined || accessSecret === undefined
          ? undefined
          : { accessKeyId: readSecret(accessKeyId, `${where}.accessKeyId`), secretAccessKey: readSecret(accessSecret, `${where}.accessSecret`) },
        sse: sse === undefined ? undefined : { algorithm: sse, kmsKeyId },
      },
    };
  });
}
