// TTL cache (spec §11.1), used for the kernel cache and the telemetry cache.
// Hardened: cleanup() returns how many entries it removed (KAS-H1-001), every eviction is
// reported to a listener so the memory governor can account for all of them, and entries can
// be pinned (no TTL) for the teacher (DESIGN §3 decision 3).

import type { Clock } from "./ports.js";

export const DEFAULT_TTL_SECONDS = 300;

/**
 * Why entries left a cache: `expired_get` (lazy expiry on read), `cleanup` (an explicit TTL
 * sweep), `gc` (the sweep inside a periodic GC), `emergency` (emergency cleanup) or `capacity`
 * (the oldest entry made room for a new one in a cache with a bound on its entries).
 */
export type EvictionCause = "expired_get" | "cleanup" | "gc" | "emergency" | "capacity";

/** Called once per operation that evicted at least one entry. */
export type EvictionListener = (count: number, cause: EvictionCause) => void;

export interface TtlCacheOptions {
  readonly clock: Clock;
  /** Not clamped: zero and negative TTLs are legal (entries are born expired, spec fixtures). */
  readonly ttlSeconds?: number;
  readonly onEviction?: EvictionListener;
  /**
   * At most this many entries; a new key past it evicts the oldest unpinned entry (cause
   * `capacity`). Unbounded when absent: what a client can make the service store must be bounded
   * (the telemetry cache holds every packet for its TTL, so it takes one).
   */
  readonly maxEntries?: number;
}

export interface TtlCacheStats {
  /** Stored entries, expired-but-not-yet-purged and pinned ones included. */
  readonly size: number;
  readonly hitRate: number;
  readonly evictions: number;
}

export interface ClearOptions {
  /** Keep pinned entries (the teacher) in place. */
  readonly keepPinned?: boolean;
  /** When set, the removed entries are evictions and reach the listener with this cause. */
  readonly evictionCause?: EvictionCause;
}

/** One stored entry as seen by diagnostics; `expiry` is Infinity for pinned entries. */
export interface TtlCacheEntry<V> {
  readonly key: string;
  readonly expiry: number;
  readonly value: V;
  readonly pinned: boolean;
}

interface Slot<V> {
  expiry: number;
  value: V;
  pinned: boolean;
}

export class TtlCache<V> {
  readonly ttlSeconds: number;
  private readonly clock: Clock;
  private readonly onEviction: EvictionListener | undefined;
  private readonly maxEntries: number;
  // Map keeps insertion order, and re-setting an existing key keeps its position (as the original).
  private readonly store = new Map<string, Slot<V>>();
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  // While expiries rise in Map order (new keys, one TTL, a monotonic clock: the telemetry cache) a
  // sweep stops at the first live entry, so the per-command sweep costs what it removes rather than
  // the whole cache (found by bench/load: ApplyCommand slowed from 0.6 to 10 ms at 160k packets).
  // Refreshing a key in place or storing a finite expiry after a later one breaks the order; then
  // sweeps scan everything until the cache is empty again.
  private ordered = true;
  // Bumped by every change to the stored entries, so the state store can skip an unchanged cache.
  private changes = 0;
  private lastExpiry = Number.NEGATIVE_INFINITY;

  constructor(options: TtlCacheOptions) {
    this.clock = options.clock;
    this.maxEntries = options.maxEntries ?? Number.POSITIVE_INFINITY;
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    this.onEviction = options.onEviction;
  }

  get size(): number {
    return this.store.size;
  }

  /** Stores `value` until now + TTL; an existing key (pinned or not) is replaced and refreshed. */
  set(key: string, value: V): void {
    this.write(key, value, this.clock.monotonic() + this.ttlSeconds, false);
  }

  /** Stores `value` with no expiry; only delete() and clear() remove it. */
  setPinned(key: string, value: V): void {
    this.write(key, value, Number.POSITIVE_INFINITY, true);
  }

  isPinned(key: string): boolean {
    return this.store.get(key)?.pinned === true;
  }

  /**
   * The stored value, or undefined on a miss. A stored `null` is a hit, so callers that store
   * nullable values must compare with undefined.
   */
  get(key: string): V | undefined {
    const slot = this.store.get(key);
    if (slot === undefined) {
      this.misses += 1;
      return undefined;
    }
    if (slot.expiry < this.clock.monotonic()) {
      this.store.delete(key);
      this.changes += 1;
      this.misses += 1;
      this.recordEvictions(1, "expired_get");
      return undefined;
    }
    this.hits += 1;
    return slot.value;
  }

  /** Reads without touching statistics or expiring anything (for status and diagnostics). */
  peek(key: string): V | undefined {
    const slot = this.store.get(key);
    return slot === undefined || slot.expiry < this.clock.monotonic() ? undefined : slot.value;
  }

  /** Silent removal: not an eviction, no statistics. */
  delete(key: string): boolean {
    this.changes += 1;
    return this.store.delete(key);
  }

  /** Removes every expired entry and returns how many it removed (KAS-H1-001). */
  cleanup(cause: "cleanup" | "gc" = "cleanup"): number {
    const now = this.clock.monotonic();
    let removed = 0;
    for (const [key, slot] of this.store) {
      // Deleting the current key while iterating a Map is safe and visits every other entry once.
      if (slot.expiry < now) {
        this.store.delete(key);
        this.changes += 1;
        removed += 1;
      } else if (this.ordered) break;
    }
    this.resetOrderIfEmpty();
    this.recordEvictions(removed, cause);
    return removed;
  }

  /**
   * Empties the cache (optionally keeping pinned entries) and zeroes hits, misses and evictions,
   * as the original's clear() does. Returns how many entries were removed.
   */
  clear(options: ClearOptions = {}): number {
    let removed: number;
    if (options.keepPinned === true) {
      removed = 0;
      for (const [key, slot] of this.store) {
        if (!slot.pinned) {
          this.store.delete(key);
          this.changes += 1;
          removed += 1;
        }
      }
    } else {
      removed = this.store.size;
      this.store.clear();
      this.changes += 1;
    }
    this.hits = 0;
    this.misses = 0;
    this.evictions = 0;
    // What clear() keeps is pinned (no expiry): those are in order among themselves.
    if (this.store.size > 0 && [...this.store.values()].every((slot) => slot.pinned)) {
      this.ordered = true;
      this.lastExpiry = Number.POSITIVE_INFINITY;
    }
    this.resetOrderIfEmpty();
    // Reported after the reset: the listener's running totals outlive the cache's own stats.
    if (options.evictionCause !== undefined && removed > 0) {
      this.onEviction?.(removed, options.evictionCause);
    }
    return removed;
  }

  stats(): TtlCacheStats {
    const lookups = this.hits + this.misses;
    return {
      size: this.store.size,
      hitRate: lookups === 0 ? 0 : this.hits / lookups,
      evictions: this.evictions,
    };
  }

  /** Entries in insertion order, for diagnostics and golden tests. */
  *entries(): IterableIterator<TtlCacheEntry<V>> {
    for (const [key, slot] of this.store) {
      yield { key, expiry: slot.expiry, value: slot.value, pinned: slot.pinned };
    }
  }

  /** How many changes the stored entries have seen: equal numbers mean the same entries. */
  get changeCount(): number {
    return this.changes;
  }

  /** Counters behind stats(), for the state store. */
  counters(): { hits: number; misses: number; evictions: number } {
    return { hits: this.hits, misses: this.misses, evictions: this.evictions };
  }

  /** Puts back entries (in insertion order) and counters saved before a restart (DESIGN §2.2). */
  restore(entries: Iterable<TtlCacheEntry<V>>, counters: { hits: number; misses: number; evictions: number }): void {
    this.store.clear();
    this.changes += 1;
    this.resetOrderIfEmpty();
    // Through write(), so the sweep's order tracking holds for restored entries too.
    for (const e of entries) this.write(e.key, e.value, e.expiry, e.pinned);
    this.hits = counters.hits;
    this.misses = counters.misses;
    this.evictions = counters.evictions;
  }

  private write(key: string, value: V, expiry: number, pinned: boolean): void {
    this.changes += 1;
    const slot = this.store.get(key);
    if (slot === undefined) {
      if (this.store.size >= this.maxEntries) this.evictOldest();
      if (expiry < this.lastExpiry) this.ordered = false;
      else this.lastExpiry = expiry;
      this.store.set(key, { expiry, value, pinned });
    } else {
      // The key keeps its place in the Map with a new expiry.
      if (expiry !== slot.expiry) this.ordered = false;
      slot.expiry = expiry;
      slot.value = value;
      slot.pinned = pinned;
    }
  }

  /** Makes room for one entry: the oldest unpinned one goes (Map order is insertion order). */
  private evictOldest(): void {
    for (const [key, slot] of this.store) {
      if (slot.pinned) continue;
      this.store.delete(key);
      this.changes += 1;
      this.resetOrderIfEmpty();
      this.recordEvictions(1, "capacity");
      return;
    }
  }

  private resetOrderIfEmpty(): void {
    if (this.store.size > 0) return;
    this.ordered = true;
    this.lastExpiry = Number.NEGATIVE_INFINITY;
  }

  private recordEvictions(count: number, cause: EvictionCause): void {
    if (count === 0) {
      return;
    }
    this.evictions += count;
    this.onEviction?.(count, cause);
  }
}
