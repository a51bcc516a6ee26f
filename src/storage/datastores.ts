// The configured datastores by id, and which one takes new writes of each kind of media (like
// matrix-media-repo's forKinds). Rows name the datastore holding their bytes, so reads go there.
import type { Datastore } from './datastore.js';
import { FilesystemDatastore } from './filesystem.js';

export type MediaKind = 'local_media' | 'remote_media' | 'thumbnails';

/** One datastore as the config describes it (`datastores:` entries, `forKinds` expanded); service.ts passing config.datastores here keeps the two in step. */
export interface DatastoreDefinition {
  readonly id: string;
  readonly type: 'file';
  readonly forKinds: readonly MediaKind[];
  readonly opts: { readonly path: string };
}

export class Datastores {
  private readonly byId: ReadonlyMap<string, Datastore>;

  constructor(private readonly stores: readonly Datastore[], private readonly writers: ReadonlyMap<MediaKind, Datastore>) {
    this.byId = new Map(stores.map((store) => [store.id, store]));
  }

  /** Opens every configured datastore; the first that takes a kind receives its new writes. */
  static async open(definitions: readonly DatastoreDefinition[]): Promise<Datastores> {
    const stores: Datastore[] = [];
    const writers = new Map<MediaKind, Datastore>();
    for (const definition of definitions) {
      const store = await openDatastore(definition);
      stores.push(store);
      for (const kind of definition.forKinds) if (!writers.has(kind)) writers.set(kind, store);
    }
    return new Datastores(stores, writers);
  }

  /** The datastore a row names. */
  get(id: string): Datastore {
    const store = this.byId.get(id);
    if (!store) throw new Error(`a stored row names datastore "${id}", which is not configured`);
    return store;
  }

  /** Where new media of `kind` is written (`homeserver` is for a later per-homeserver choice). */
  forKind(kind: MediaKind, _homeserver?: string): Datastore {
    const store = this.writers.get(kind);
    if (!store) throw new Error(`no datastore takes ${kind}`);
    return store;
  }

  all(): readonly Datastore[] {
    return this.stores;
  }
}

function openDatastore(definition: DatastoreDefinition): Promise<Datastore> {
  switch (definition.type) {
    case 'file':
      return FilesystemDatastore.open(definition.opts.path, definition.id);
  }
}
