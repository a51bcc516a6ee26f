// The configured datastores by id, and which one takes new writes of each kind of media (like
// matrix-media-repo's forKinds), per homeserver. Rows name the datastore holding their bytes, so reads go there.
import type { Datastore } from './datastore.js';
import { FilesystemDatastore } from './filesystem.js';
import { ProxyOffload, type ProxyOffloadOptions } from './proxy-offload.js';
import type { S3Options } from './s3-client.js';
import type { SmallBlobs } from './small-blobs.js';

export type MediaKind = 'local_media' | 'remote_media' | 'thumbnails';

interface DefinitionBase {
  readonly id: string;
  readonly forKinds: readonly MediaKind[];
  /** Only these homeservers' new media goes here; undefined: every homeserver's. */
  readonly forHomeservers?: readonly string[];
}

/** One datastore as the config describes it (`forKinds` expanded, secrets read); service.ts passes config.datastores here. */
export type DatastoreDefinition =
  | DefinitionBase & { readonly type: 'file'; readonly opts: { readonly path: string; readonly proxyOffload?: ProxyOffloadOptions } }
  | DefinitionBase & { readonly type: 's3'; readonly opts: S3Options };

interface OpenOptions {
  /** This instance's id, which names its staged bytes (a fresh one when absent). */
  instanceId?: string;
  smallBlobs?: SmallBlobs;
}

interface Writer {
  store: Datastore;
  forHomeservers?: readonly string[];
}

export class Datastores {
  private readonly byId: ReadonlyMap<string, Datastore>;

  constructor(private readonly stores: readonly Datastore[], private readonly writers: ReadonlyMap<MediaKind, readonly Writer[]>) {
    this.byId = new Map(stores.map((store) => [store.id, store]));
  }

  /**
   * Opens every configured datastore; of those taking a kind (for a homeserver), the first receives its new
   * writes. `instanceId` names this instance's staged bytes.
   */
  static async open(definitions: readonly DatastoreDefinition[], options: OpenOptions = {}): Promise<Datastores> {
    const stores: Datastore[] = [];
    const writers = new Map<MediaKind, Writer[]>();
    for (const definition of definitions) {
      const store = await openDatastore(definition, options);
      stores.push(store);
      for (const kind of definition.forKinds) {
        writers.set(kind, [...(writers.get(kind) ?? []), { store, forHomeservers: definition.forHomeservers }]);
      }
    }
    return new Datastores(stores, writers);
  }

  /** The datastore a row names. */
  get(id: string): Datastore {
    const store = this.byId.get(id);
    if (!store) throw new Error(`a stored row names datastore "${id}", which is not configured`);
    return store;
  }

  /**
   * Where new media of `kind` for `homeserver` (the uploader's, or the one fetching remote media) is
   * written: the first datastore naming that homeserver, else the first open to every homeserver.
   */
  forKind(kind: MediaKind, homeserver?: string): Datastore {
    const writers = this.writers.get(kind) ?? [];
    const writer = writers.find((w) => homeserver !== undefined && w.forHomeservers?.includes(homeserver)) ?? writers.find((w) => !w.forHomeservers);
    if (!writer) throw new Error(`no datastore takes ${kind}${homeserver ? ` for ${homeserver}` : ''}`);
    return writer.store;
  }

  all(): readonly Datastore[] {
    return this.stores;
  }

  /** The same datastores and write rules, each store replaced by `wrap(store)` (e.g. to measure it). */
  map(wrap: (store: Datastore) => Datastore): Datastores {
    const wrapped = new Map(this.stores.map((store) => [store, wrap(store)]));
    const writers = new Map([...this.writers].map(([kind, list]) => [kind, list.map((w) => ({ ...w, store: wrapped.get(w.store)! }))]));
    return new Datastores([...wrapped.values()], writers);
  }

  close(): void {
    for (const store of this.stores) store.close?.();
  }
}

async function openDatastore(definition: DatastoreDefinition, options: OpenOptions): Promise<Datastore> {
  switch (definition.type) {
    case 'file':
      return FilesystemDatastore.open(definition.opts.path, definition.id, {
        writer: options.instanceId, smallBlobs: options.smallBlobs,
        proxyOffload: definition.opts.proxyOffload && new ProxyOffload(definition.opts.proxyOffload),
      });
    case 's3': {
      // Loaded only when configured: the AWS SDK costs seconds of start-up and tens of MiB to every service.
      const { S3Datastore } = await import('./s3.js');
      return new S3Datastore(definition.id, definition.opts, options.instanceId);
    }
  }
}
