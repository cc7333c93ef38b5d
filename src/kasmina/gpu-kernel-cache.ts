// Bounded LRU of kernels keyed by blueprint id (spec §8.7). A Map's insertion order is the
// recency order: a hit deletes and re-inserts the key, so the first key is least recent.

export const DEFAULT_GPU_CACHE_CAPACITY = 32;

export interface GpuKernelCacheStats {
  readonly size: number;
  readonly capacity: number;
  readonly hitRate: number;
  readonly evictions: number;
}

export class GpuKernelCache<V> {
  readonly capacity: number;
  private readonly store = new Map<string, V>();
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  constructor(capacity: number = DEFAULT_GPU_CACHE_CAPACITY) {
    // The manager does not create the cache at all for capacity ≤ 0 (spec §2.1).
    if (!Number.isInteger(capacity) || capacity <= 0) {
      throw new RangeError(`GpuKernelCache capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
  }

  get size(): number {
    return this.store.size;
  }

  get(blueprintId: string): V | undefined {
    if (!this.store.has(blueprintId)) {
      this.misses += 1;
      return undefined;
    }
    const value = this.store.get(blueprintId) as V;
    this.store.delete(blueprintId);
    this.store.set(blueprintId, value);
    this.hits += 1;
    return value;
  }

  set(blueprintId: string, value: V): void {
    if (this.store.has(blueprintId)) {
      // Replacing an entry makes it most recent and never evicts.
      this.store.delete(blueprintId);
    } else if (this.store.size >= this.capacity) {
      const leastRecent = this.store.keys().next().value as string;
      this.store.delete(leastRecent);
      this.evictions += 1;
    }
    this.store.set(blueprintId, value);
  }

  /** Silent removal (retire invalidation, DESIGN §3 decision 5); no statistics change. */
  delete(blueprintId: string): boolean {
    return this.store.delete(blueprintId);
  }

  /** Blueprint ids from least to most recently used. */
  keys(): string[] {
    return [...this.store.keys()];
  }

  /** Entries from least to most recent and the counters, for the state store. */
  exportState(): { entries: [string, V][]; hits: number; misses: number; evictions: number } {
    return { entries: [...this.store.entries()], hits: this.hits, misses: this.misses, evictions: this.evictions };
  }

  restore(state: { entries: [string, V][]; hits: number; misses: number; evictions: number }): void {
    this.store.clear();
    for (const [key, value] of state.entries) this.store.set(key, value);
    this.hits = state.hits;
    this.misses = state.misses;
    this.evictions = state.evictions;
  }

  stats(): GpuKernelCacheStats {
    const lookups = this.hits + this.misses;
    return {
      size: this.store.size,
      capacity: this.capacity,
      hitRate: lookups === 0 ? 0 : this.hits / lookups,
      evictions: this.evictions,
    };
  }
}
