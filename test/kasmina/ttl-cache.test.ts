import { describe, expect, it } from "vitest";
import { FakeClock } from "../../src/kasmina/ports.js";
import { TtlCache, type EvictionCause, type TtlCacheStats } from "../../src/kasmina/ttl-cache.js";
import {
  loadMemoryFixture,
  memoryFixtureNames,
  type StatsJson,
  type TtlCacheSetupJson,
} from "./memory-fixture.js";

function statsJson(stats: TtlCacheStats): StatsJson {
  return { size: stats.size, hit_rate: stats.hitRate, evictions: stats.evictions };
}

function recordingCache<V>(ttlSeconds?: number, clock = new FakeClock(100)) {
  const evicted: Array<[number, EvictionCause]> = [];
  const cache = new TtlCache<V>({
    clock,
    ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
    onEviction: (count, cause) => evicted.push([count, cause]),
  });
  return { clock, cache, evicted };
}

const fixtureNames = memoryFixtureNames("ttl_cache_");

describe("TtlCache golden replay", () => {
  it("finds all four ttl_cache recordings", () => {
    expect(fixtureNames).toEqual([
      "ttl_cache_basic.json",
      "ttl_cache_default_ttl.json",
      "ttl_cache_negative_ttl.json",
      "ttl_cache_zero_ttl.json",
    ]);
  });

  it.each(fixtureNames)("%s", (name) => {
    const fixture = loadMemoryFixture<TtlCacheSetupJson>(name);
    const ttl = fixture.setup.ttl_seconds;
    const { clock, cache, evicted } = recordingCache<unknown>(ttl ?? undefined, new FakeClock(fixture.setup.initial_clock));
    expect(cache.ttlSeconds).toBe(fixture.setup.effective_ttl_seconds);
    expect(statsJson(cache.stats())).toEqual(fixture.initial_stats["cache"]);

    let misses = 0;
    for (const step of fixture.steps) {
      const where = `${name} step ${step.i} (${step.call})`;
      clock.mono = step.clock;
      expect(cache.size, where).toBe(step.size_before["cache"]);
      evicted.length = 0;
      const internal = step.internal_after["cache"]!;
      const key = step.args.key ?? "";
      switch (step.call) {
        case "set":
          cache.set(key, step.args.value);
          break;
        case "get": {
          const got = cache.get(key);
          // A stored null is a hit: only the miss counter tells a miss from a null value.
          const missed = internal.misses > misses;
          expect(got, where).toEqual(missed ? undefined : step.returned);
          break;
        }
        case "cleanup":
          expect(cache.cleanup(), where).toBe(step.returned);
          break;
        case "delete":
          expect(cache.delete(key), where).toBe(step.true_evictions["cache"] === 1);
          break;
        case "clear":
          expect(cache.clear(), where).toBe(step.size_before["cache"]);
          break;
        case "stats":
          expect(statsJson(cache.stats()), where).toEqual(step.returned);
          break;
        default:
          throw new Error(`unhandled call ${step.call}`);
      }
      misses = internal.misses;

      expect(cache.size, where).toBe(step.size_after["cache"]);
      expect(statsJson(cache.stats()), where).toEqual(step.stats_after["cache"]);
      expect(
        [...cache.entries()].map((e) => [e.key, e.expiry, e.value]),
        where,
      ).toEqual(internal.entries);
      // Every real removal except the silent delete and the stats-resetting clear reaches the listener.
      const reported = evicted.reduce((sum, [count]) => sum + count, 0);
      const silent = step.call === "delete" || step.call === "clear";
      expect(reported, where).toBe(silent ? 0 : step.true_evictions["cache"]);
    }
  });
});

describe("TtlCache", () => {
  it("expires strictly after the expiry instant", () => {
    const { clock, cache } = recordingCache<string>(10);
    cache.set("k", "v");
    clock.mono = 110;
    expect(cache.get("k")).toBe("v");
    clock.mono = 110.000001;
    expect(cache.get("k")).toBeUndefined();
    expect(cache.stats()).toEqual({ size: 0, hitRate: 0.5, evictions: 1 });
  });

  it("re-set refreshes the expiry and keeps the insertion position", () => {
    const { clock, cache } = recordingCache<number>(10);
    cache.set("a", 1);
    cache.set("b", 2);
    clock.advance(8);
    cache.set("a", 3);
    expect([...cache.entries()].map((e) => [e.key, e.expiry, e.value])).toEqual([
      ["a", 118, 3],
      ["b", 110, 2],
    ]);
    clock.advance(5);
    expect(cache.cleanup()).toBe(1);
    expect(cache.get("a")).toBe(3);
  });

  it("reports each eviction to the listener with its cause and returns cleanup counts", () => {
    const { clock, cache, evicted } = recordingCache<number>(10);
    for (const key of ["a", "b", "c", "d"]) cache.set(key, 1);
    clock.advance(11);
    expect(cache.get("a")).toBeUndefined();
    expect(cache.cleanup("gc")).toBe(3);
    expect(cache.cleanup()).toBe(0);
    cache.set("e", 1);
    cache.set("f", 1);
    clock.advance(11);
    expect(cache.cleanup()).toBe(2);
    expect(evicted).toEqual([
      [1, "expired_get"],
      [3, "gc"],
      [2, "cleanup"],
    ]);
    expect(cache.stats().evictions).toBe(6);
  });

  it("delete is silent; clear zeroes statistics and reports only when given a cause", () => {
    const { cache, evicted } = recordingCache<number>(10);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.get("a");
    cache.get("zz");
    expect(cache.delete("a")).toBe(true);
    expect(cache.delete("a")).toBe(false);
    expect(cache.stats()).toEqual({ size: 1, hitRate: 0.5, evictions: 0 });
    expect(cache.clear()).toBe(1);
    expect(cache.stats()).toEqual({ size: 0, hitRate: 0, evictions: 0 });
    cache.set("c", 3);
    expect(cache.clear({ evictionCause: "emergency" })).toBe(1);
    expect(evicted).toEqual([[1, "emergency"]]);
  });

  describe("pinned entries", () => {
    it("never expire, through get, cleanup and a clock far in the future", () => {
      const { clock, cache, evicted } = recordingCache<string>(5);
      cache.setPinned("teacher", "t");
      cache.set("k", "v");
      clock.advance(1e9);
      expect(cache.cleanup()).toBe(1);
      expect(cache.get("teacher")).toBe("t");
      expect(cache.isPinned("teacher")).toBe(true);
      expect([...cache.entries()]).toEqual([
        { key: "teacher", expiry: Number.POSITIVE_INFINITY, value: "t", pinned: true },
      ]);
      expect(evicted).toEqual([[1, "cleanup"]]);
    });

    it("survive clear({ keepPinned }) but not a plain clear", () => {
      const { cache } = recordingCache<string>(5);
      cache.set("a", "1");
      cache.setPinned("teacher", "t");
      cache.set("b", "2");
      cache.get("a");
      expect(cache.clear({ keepPinned: true, evictionCause: "emergency" })).toBe(2);
      expect([...cache.entries()].map((e) => e.key)).toEqual(["teacher"]);
      expect(cache.stats()).toEqual({ size: 1, hitRate: 0, evictions: 0 });
      expect(cache.clear()).toBe(1);
      expect(cache.size).toBe(0);
    });

    it("a plain set over a pinned key gives it a TTL again", () => {
      const { clock, cache } = recordingCache<string>(5);
      cache.setPinned("teacher", "t1");
      cache.set("teacher", "t2");
      expect(cache.isPinned("teacher")).toBe(false);
      clock.advance(6);
      expect(cache.get("teacher")).toBeUndefined();
    });

    it("peek reads without statistics or eviction", () => {
      const { clock, cache } = recordingCache<string>(5);
      cache.set("k", "v");
      expect(cache.peek("k")).toBe("v");
      clock.advance(6);
      expect(cache.peek("k")).toBeUndefined();
      expect(cache.stats()).toEqual({ size: 1, hitRate: 0, evictions: 0 });
    });
  });
});

describe("TtlCache bounds (the telemetry cache held every packet for its TTL: 1.1 GiB per 100k calls under bench:load)", () => {
  it("a cache with maxEntries evicts its oldest unpinned entry, counted with cause capacity", () => {
    const clock = new FakeClock(100);
    const evicted: Array<[number, EvictionCause]> = [];
    const cache = new TtlCache<number>({ clock, maxEntries: 3, onEviction: (count, cause) => evicted.push([count, cause]) });
    cache.setPinned("teacher", 0);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.set("a", 10); // a refresh is no new entry
    expect(evicted).toEqual([]);
    cache.set("c", 3);
    expect(evicted).toEqual([[1, "capacity"]]);
    expect([...cache.entries()].map((e) => e.key)).toEqual(["teacher", "b", "c"]);
    expect(cache.stats()).toMatchObject({ size: 3, evictions: 1 });
    for (let i = 0; i < 1000; i++) cache.set(`k${i}`, i);
    expect(cache.stats().size).toBe(3);
    expect(cache.get("teacher")).toBe(0);
  });

  it("entries restored out of expiry order are all swept (the early-stop sweep must not trust restored order)", () => {
    const clock = new FakeClock(100);
    const cache = new TtlCache<number>({ clock, ttlSeconds: 10 });
    cache.restore(
      [
        { key: "late", expiry: 200, value: 1, pinned: false },
        { key: "early", expiry: 150, value: 2, pinned: false },
      ],
      { hits: 0, misses: 0, evictions: 0 },
    );
    clock.advance(60); // now 160: "early" has expired, "late" has not
    expect(cache.cleanup("cleanup")).toBe(1);
    expect([...cache.entries()].map((e) => e.key)).toEqual(["late"]);
  });
});

describe("TtlCache change count (the state store skips an unchanged cache instead of scanning it on every call)", () => {
  it("moves on every change to the entries and never on a read", () => {
    const clock = new FakeClock(100);
    const cache = new TtlCache<number>({ clock, ttlSeconds: 10, maxEntries: 2 });
    const seen = [cache.changeCount];
    const changed = (): boolean => {
      const now = cache.changeCount;
      const moved = now !== seen[seen.length - 1];
      seen.push(now);
      return moved;
    };
    cache.set("a", 1);
    expect(changed()).toBe(true);
    cache.get("a");
    cache.stats();
    expect(cache.cleanup("cleanup")).toBe(0);
    expect(changed()).toBe(false);
    cache.set("b", 2);
    cache.set("c", 3); // evicts "a" for capacity
    expect(changed()).toBe(true);
    cache.delete("b");
    expect(changed()).toBe(true);
    clock.advance(20);
    expect(cache.get("c")).toBeUndefined(); // lazy expiry is a change
    expect(changed()).toBe(true);
    cache.set("d", 4);
    clock.advance(20);
    expect(cache.cleanup("cleanup")).toBe(1);
    expect(changed()).toBe(true);
    cache.set("e", 5);
    cache.clear();
    expect(changed()).toBe(true);
  });
});
