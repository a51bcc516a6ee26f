// Datastores with every operation counted and timed, wrapped here so that storage/ knows nothing of metrics.
import type { Counter, Histogram } from 'prom-client';
import type { Datastore } from '../storage/datastore.js';
import type { Datastores } from '../storage/datastores.js';

export interface DatastoreMetrics {
  datastoreOps: Counter<'datastore' | 'operation' | 'outcome'>;
  datastoreLatency: Histogram<'datastore' | 'operation'>;
}

export function instrumentDatastores(datastores: Datastores, metrics: DatastoreMetrics): Datastores {
  return datastores.map((store) => instrument(store, metrics));
}

function instrument(store: Datastore, metrics: DatastoreMetrics): Datastore {
  const timed = <A extends unknown[], R>(operation: string, fn: (...args: A) => Promise<R>) => async (...args: A): Promise<R> => {
    const end = metrics.datastoreLatency.startTimer({ datastore: store.id, operation });
    try {
      const result = await fn(...args);
      metrics.datastoreOps.inc({ datastore: store.id, operation, outcome: 'ok' });
      return result;
    } catch (error) {
      metrics.datastoreOps.inc({ datastore: store.id, operation, outcome: 'error' });
      throw error;
    } finally {
      end();
    }
  };
  return {
    id: store.id,
    writeStream: timed('write', store.writeStream.bind(store)),
    read: timed('read', store.read.bind(store)),
    has: timed('has', store.has.bind(store)),
    delete: timed('delete', store.delete.bind(store)),
    list: () => store.list(),
    listStaging: () => store.listStaging(),
    removeStaging: timed('sweep', store.removeStaging.bind(store)),
    // Counted as a write once the caller has filled it: its time is the flush that makes it durable.
    ...(store.createStagingFile ? { createStagingFile: async () => {
      const file = await store.createStagingFile!();
      return { ...file, staged: timed('write', file.staged) };
    } } : {}),
    ...(store.readWhole ? { readWhole: timed('read', store.readWhole.bind(store)), wholeReadLimit: store.wholeReadLimit } : {}),
    ...(store.proxyOffload ? { proxyOffload: store.proxyOffload } : {}),
    ...(store.redirectUrl ? { redirectUrl: store.redirectUrl.bind(store) } : {}),
    ...(store.close ? { close: store.close.bind(store) } : {}),
  };
}
