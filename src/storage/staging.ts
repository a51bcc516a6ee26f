// Staging leftovers: staged bytes whose writing instance is no longer alive (it crashed between staging and
// commit or discard). Names carry the writer, so they go at once, and a live writer's never do.
import { randomUUID } from 'node:crypto';
import type { Datastore, StagingEntry, StagingSweep } from './datastore.js';

export interface StagingOwners {
  /** The instances alive now. */
  live(): Promise<ReadonlySet<string>>;
  /** Staging named by no writer (from before names carried one) may be an older version's in progress for this long. */
  unnamedOlderThanMs: number;
}

/** How long staging named by no writer is left alone: an upload in progress keeps writing it. */
export const UNNAMED_STAGING_MS = 24 * 3600_000;

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const NAMED = new RegExp(`^(${UUID})\\.${UUID}(\\.part)?$`);

/** A fresh staging name for `writer`'s bytes: `<writer>.<uuid>`. */
export function stagingName(writer: string): string {
  return `${writer}.${randomUUID()}`;
}

/** The writer a staging name carries, if any. */
export function writerOf(name: string): string | undefined {
  return NAMED.exec(name)?.[1];
}

/** What no live writer owns, read without changing anything. */
export async function abandonedStaging(store: Datastore, owners: StagingOwners, now = Date.now()): Promise<StagingEntry[]> {
  const entries: StagingEntry[] = [];
  for await (const entry of store.listStaging()) entries.push(entry);
  // Asked after listing: a writer registers before it stages anything, so every listed writer alive now is in the set.
  const live = await owners.live();
  const cutoff = now - owners.unnamedOlderThanMs;
  return entries.filter((entry) => (entry.writer === undefined ? entry.modifiedMs <= cutoff : !live.has(entry.writer)));
}

/** Removes what no live writer owns; safe while other instances share the datastore. */
export async function sweepStaging(store: Datastore, owners: StagingOwners): Promise<StagingSweep> {
  const abandoned = await abandonedStaging(store, owners);
  for (const entry of abandoned) await store.removeStaging(entry);
  const uploads = abandoned.filter((entry) => entry.uploadId !== undefined).length;
  return { staged: abandoned.length - uploads, uploads };
}
