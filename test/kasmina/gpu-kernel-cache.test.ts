import { describe, expect, it } from "vitest";
import { DEFAULT_GPU_CACHE_CAPACITY, GpuKernelCache } from "../../src/kasmina/gpu-kernel-cache.js";

describe("GpuKernelCache (spec §8.7)", () => {
  it("defaults to capacity 32 and rejects capacity ≤ 0 or fractional", () => {
    expect(new GpuKernelCache<string>().capacity).toBe(DEFAULT_GPU_CACHE_CAPACITY);
    expect(DEFAULT_GPU_CACHE_CAPACITY).toBe(32);
    for (const capacity of [0, -1, 1.5, Number.NaN]) {
      expect(() => new GpuKernelCache<string>(capacity)).toThrow(RangeError);
    }
  });

  it("counts misses and hits; hit rate is 0 before any lookup", () => {
    const cache = new GpuKernelCache<string>(2);
    expect(cache.stats()).toEqual({ size: 0, capacity: 2, hitRate: 0, evictions: 0 });
    expect(cache.get("BP001")).toBeUndefined();
    cache.set("BP001", "k1");
    expect(cache.get("BP001")).toBe("k1");
    expect(cache.get("BP001")).toBe("k1");
    expect(cache.stats()).toEqual({ size: 1, capacity: 2, hitRate: 2 / 3, evictions: 0 });
  });

  it("evicts the least recently used entry, where a hit refreshes recency", () => {
    const cache = new GpuKernelCache<string>(3);
    cache.set("a", "A");
    cache.set("b", "B");
    cache.set("c", "C");
    cache.get("a"); // order now b, c, a
    cache.set("d", "D"); // evicts b
    expect(cache.keys()).toEqual(["c", "a", "d"]);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.stats().evictions).toBe(1);
  });

  it("replacing an existing key moves it to most recent without evicting", () => {
    const cache = new GpuKernelCache<string>(2);
    cache.set("a", "A");
    cache.set("b", "B");
    cache.set("a", "A2");
    expect(cache.keys()).toEqual(["b", "a"]);
    expect(cache.stats()).toMatchObject({ size: 2, evictions: 0 });
    cache.set("c", "C"); // evicts b, the least recent
    expect(cache.keys()).toEqual(["a", "c"]);
    expect(cache.get("a")).toBe("A2");
  });

  it("delete is silent", () => {
    const cache = new GpuKernelCache<string>(2);
    cache.set("a", "A");
    expect(cache.delete("a")).toBe(true);
    expect(cache.delete("a")).toBe(false);
    expect(cache.stats()).toEqual({ size: 0, capacity: 2, hitRate: 0, evictions: 0 });
  });

  it("stores falsy kernels as hits", () => {
    const cache = new GpuKernelCache<number | null>(1);
    cache.set("zero", 0);
    expect(cache.get("zero")).toBe(0);
    cache.set("null", null);
    expect(cache.get("null")).toBeNull();
    expect(cache.stats()).toMatchObject({ hitRate: 1, evictions: 1 });
  });
});
