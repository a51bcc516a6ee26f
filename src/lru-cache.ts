// A bounded map that forgets the least recently used entry first.

/** Told whether each lookup found its entry (cache hit and miss metrics). */
export type CacheLookups = (hit: boolean) => void;

export class LruCache<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(private readonly capacity: number, private readonly lookups?: CacheLookups) {}

  get(key: K): V | undefined {
    const value = this.entries.get(key);
    this.lookups?.(value !== undefined);
    if (value !== undefined) {
      // Re-inserting moves the key to the end of the Map's order: the most recently used.
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as K);
  }
}
