import { describe, expect, it } from "vitest";
import {
  MEMORY_EVICTIONS_METRIC,
  MemoryGovernor,
  TEACHER_KEY,
  emergencyEventAttributes,
  gcEventAttributes,
  type GcResult,
} from "../../src/kasmina/memory-governor.js";
import { FakeClock, type MetricAttributes, type MetricsPort } from "../../src/kasmina/ports.js";
import type { TtlCache, TtlCacheStats } from "../../src/kasmina/ttl-cache.js";
import {
  loadMemoryFixture,
  memoryFixtureNames,
  type CacheInternalJson,
  type ManagerSetupJson,
  type StatsJson,
} from "./memory-fixture.js";

interface Recorded {
  readonly name: string;
  readonly value: number;
  readonly attributes: MetricAttributes;
}

/** A MetricsPort that keeps every counter add, so tests can read evictions back. */
function recordingMetrics(): { metrics: MetricsPort; adds: Recorded[] } {
  const adds: Recorded[] = [];
  const metrics: MetricsPort = {
    counter: (name) => ({ add: (value, attributes = {}) => void adds.push({ name, value, attributes }) }),
    histogram: () => ({ record: () => undefined }),
  };
  return { metrics, adds };
}

function evictionsOf(adds: readonly Recorded[], cache: "kernel" | "telemetry"): Map<string, number> {
  const byCause = new Map<string, number>();
  for (const add of adds) {
    if (add.name !== MEMORY_EVICTIONS_METRIC || add.attributes["kasmina.cache"] !== cache) continue;
    const cause = add.attributes["kasmina.eviction.cause"] ?? "?";
    byCause.set(cause, (byCause.get(cause) ?? 0) + add.value);
  }
  return byCause;
}

function sum(map: Map<string, number>): number {
  let total = 0;
  for (const value of map.values()) total += value;
  return total;
}

function statsJson(stats: TtlCacheStats): StatsJson {
  return { size: stats.size, hit_rate: stats.hitRate, evictions: stats.evictions };
}

const CACHES = ["kernel_cache", "telemetry_cache"] as const;
type CacheTarget = (typeof CACHES)[number];

/** The eviction cause each recorded call must report under. */
const CAUSE_OF_CALL: Readonly<Record<string, string>> = {
  get: "expired_get",
  cleanup: "cleanup",
  periodic_gc: "gc",
  emergency_cleanup: "emergency",
};

/**
 * Replays one manager recording against MemoryGovernor.
 *
 * The service deliberately differs from the recording in two ways (fixtures README, bottom),
 * and this replay re-states exactly those expectations:
 *  1. The teacher is pinned (DESIGN §3 decision 3). A recorded `kernel_cache.set("teacher", v)`
 *     is replayed as `registerTeacher(v)`. Where the original lost the teacher (its TTL ran out,
 *     or it was stored as null and not re-stored by emergency cleanup) the service keeps it, so
 *     the kernel cache's size, true evictions, eviction stat and hit/miss counts are adjusted by
 *     exactly that teacher entry; every other entry must match the recording as is.
 *  2. Counts are reported (KAS-H1-001): manager `cleanup()` returns the true evictions instead of
 *     null; `emergency_cleanup` returns what was really removed (the original also counted the
 *     preserved teacher); and a GC run reports every expiry since the previous GC report (lazy
 *     `get`, manager and cache cleanups, the GC sweep), not only its own sweep.
 */
function replayManager(name: string): void {
  const fixture = loadMemoryFixture<ManagerSetupJson>(name);
  const { setup } = fixture;
  const clock = new FakeClock(setup.initial_clock);
  const { metrics, adds } = recordingMetrics();
  const gov = new MemoryGovernor<unknown, unknown>({
    clock,
    metrics,
    kernelTtlSeconds: setup.kernel_cache.ttl_seconds,
    telemetryTtlSeconds: setup.telemetry_cache.ttl_seconds,
    ...(setup.gc_frequency === null ? {} : { gcFrequency: setup.gc_frequency }),
  });
  expect(gov.gcFrequency).toBe(setup.effective_gc_frequency);
  const caches: Record<CacheTarget, TtlCache<unknown>> = {
    kernel_cache: gov.kernelCache,
    telemetry_cache: gov.telemetryCache,
  };
  for (const target of CACHES) expect(statsJson(caches[target].stats())).toEqual(fixture.initial_stats[target]);

  // Service-side teacher, tracked independently of the governor under test.
  let serviceTeacher: { value: unknown } | undefined;
  let recordedTeacher = false;
  // Kernel-cache stat adjustments caused only by the pinned teacher; clear() resets them.
  let teacherHits = 0;
  let teacherEvictions = 0;
  const previous: Record<CacheTarget, CacheInternalJson> = {
    kernel_cache: { hits: 0, misses: 0, entries: [] },
    telemetry_cache: { hits: 0, misses: 0, entries: [] },
  };
  // Expirations since the last GC report, per the recording's true evictions.
  const unreported: Record<CacheTarget, number> = { kernel_cache: 0, telemetry_cache: 0 };

  const hasTeacher = (internal: CacheInternalJson): boolean => internal.entries.some(([key]) => key === TEACHER_KEY);
  const serviceSize = (target: CacheTarget, recorded: number, recTeacher: boolean, svcTeacher: boolean): number =>
    target === "kernel_cache" ? recorded - Number(recTeacher) + Number(svcTeacher) : recorded;

  for (const step of fixture.steps) {
    const where = `${name} step ${step.i} (${step.target}.${step.call} ${JSON.stringify(step.args)})`;
    clock.mono = step.clock;
    const svcTeacherBefore = serviceTeacher !== undefined;
    const recTeacherBefore = recordedTeacher;
    const recTeacherAfter = hasTeacher(step.internal_after["kernel_cache"]!);
    // The service keeps the teacher whenever the original did (and sometimes longer).
    if (recTeacherBefore) expect(svcTeacherBefore, where).toBe(true);
    for (const target of CACHES) {
      expect(caches[target].size, where).toBe(
        serviceSize(target, step.size_before[target]!, recTeacherBefore, svcTeacherBefore),
      );
    }
    const addsBefore = adds.length;
    const key = step.args.key ?? "";
    let returned: unknown;

    if (step.target === "manager") {
      switch (step.call) {
        case "cleanup":
          returned = gov.cleanup();
          break;
        case "periodic_gc":
          returned = gov.periodicGc(step.args.epoch ?? Number.NaN);
          break;
        case "emergency_cleanup": {
          const includeTeacher = step.args.include_teacher ?? false;
          returned = gov.emergencyCleanup(includeTeacher);
          if (includeTeacher) serviceTeacher = undefined;
          break;
        }
        default:
          throw new Error(`unhandled call ${step.call}`);
      }
    } else {
      const target = step.target as CacheTarget;
      const cache = caches[target];
      switch (step.call) {
        case "set":
          if (target === "kernel_cache" && key === TEACHER_KEY) {
            gov.registerTeacher(step.args.value); // re-stated: the teacher is pinned
            serviceTeacher = { value: step.args.value };
          } else {
            cache.set(key, step.args.value);
          }
          break;
        case "get":
          returned = cache.get(key);
          break;
        case "delete":
          cache.delete(key);
          if (target === "kernel_cache" && key === TEACHER_KEY) serviceTeacher = undefined;
          break;
        case "cleanup":
          returned = cache.cleanup();
          break;
        case "stats":
          returned = statsJson(cache.stats());
          break;
        default:
          throw new Error(`unhandled call ${step.call}`);
      }
    }

    const svcTeacherAfter = serviceTeacher !== undefined;
    recordedTeacher = recTeacherAfter;
    // True evictions as the service sees them: the recording's, minus a teacher the original
    // lost while the service kept it, plus a teacher the service itself removed.
    const svcTrue: Record<CacheTarget, number> = {
      kernel_cache:
        step.true_evictions["kernel_cache"]! -
        Number(recTeacherBefore && !recTeacherAfter) +
        Number(svcTeacherBefore && !svcTeacherAfter),
      telemetry_cache: step.true_evictions["telemetry_cache"]!,
    };
    const countsAsExpiry = step.call === "get" || step.call === "cleanup" || step.call === "periodic_gc";
    if (countsAsExpiry) {
      for (const target of CACHES) unreported[target] += svcTrue[target];
    }

    // Returned values.
    if (step.call === "get") {
      const target = step.target as CacheTarget;
      const missed = step.internal_after[target]!.misses > previous[target].misses;
      if (target === "kernel_cache" && key === TEACHER_KEY && serviceTeacher !== undefined) {
        // Re-stated: the pinned teacher is always a hit.
        expect(returned, where).toEqual(serviceTeacher.value);
        if (missed) teacherHits += 1;
      } else {
        expect(returned, where).toEqual(missed ? undefined : step.returned);
      }
    } else if (step.target === "manager" && step.call === "cleanup") {
      // Re-stated: the original returned null here.
      expect(returned, where).toEqual({
        kernelCacheExpired: svcTrue.kernel_cache,
        telemetryCacheExpired: svcTrue.telemetry_cache,
      });
    } else if (step.call === "cleanup") {
      expect(returned, where).toBe(svcTrue[step.target as CacheTarget]);
      if (step.target === "kernel_cache" && !recTeacherBefore) expect(returned, where).toBe(step.returned);
    } else if (step.call === "periodic_gc") {
      const recorded = step.returned as Record<string, number | string>;
      const result = returned as GcResult;
      if ("gc_skipped" in recorded) {
        expect(result, where).toEqual({ ran: false, skippedReason: recorded["reason"] });
      } else {
        // Re-stated: the report covers every expiry since the previous report.
        expect(result, where).toEqual({
          ran: true,
          kernelCacheExpired: unreported.kernel_cache,
          telemetryCacheExpired: unreported.telemetry_cache,
          gcCollected: 0,
          gcCounter: recorded["gc_counter"],
          gcEpoch: recorded["gc_epoch"],
        });
        unreported.kernel_cache = 0;
        unreported.telemetry_cache = 0;
      }
    } else if (step.call === "emergency_cleanup") {
      const recorded = step.returned as Record<string, number>;
      // Re-stated: what was really removed; the original also counted a preserved teacher.
      expect(returned, where).toEqual({
        kernelCacheCleared: svcTrue.kernel_cache,
        telemetryCacheCleared: recorded["telemetry_cache_cleared"],
        gcCollected: 0,
      });
      // With no teacher on either side the original's count already was the true one.
      if (!svcTeacherBefore) expect(svcTrue.kernel_cache, where).toBe(recorded["kernel_cache_cleared"]);
      teacherHits = 0;
      teacherEvictions = 0;
    } else if (step.call === "stats") {
      // Checked below through stats_after, which the recording makes equal to `returned`.
      expect(step.returned, where).toEqual(step.stats_after[step.target]);
    }
    if (countsAsExpiry && recTeacherBefore && !recTeacherAfter && svcTeacherAfter) {
      teacherEvictions += 1; // the original evicted its expired teacher, the pinned one stays
    }

    // Every removal is reported to the metrics port, once, with the call's cause.
    const stepAdds = adds.slice(addsBefore);
    for (const [target, cacheName] of [
      ["kernel_cache", "kernel"],
      ["telemetry_cache", "telemetry"],
    ] as const) {
      const byCause = evictionsOf(stepAdds, cacheName);
      const silent = step.call === "set" || step.call === "delete" || step.call === "stats";
      expect(sum(byCause), `${where} ${cacheName} evictions`).toBe(silent ? 0 : svcTrue[target]);
      if (sum(byCause) > 0) expect([...byCause.keys()], where).toEqual([CAUSE_OF_CALL[step.call]]);
    }

    // State after the call.
    for (const target of CACHES) {
      const cache = caches[target];
      const internal = step.internal_after[target]!;
      expect(cache.size, where).toBe(serviceSize(target, step.size_after[target]!, recTeacherAfter, svcTeacherAfter));
      const recordedStats = step.stats_after[target]!;
      if (target === "kernel_cache" && (teacherHits !== 0 || teacherEvictions !== 0 || recTeacherAfter !== svcTeacherAfter)) {
        const hits = internal.hits + teacherHits;
        const misses = internal.misses - teacherHits;
        expect(statsJson(cache.stats()), where).toEqual({
          size: cache.size === 0 ? 0 : serviceSize(target, recordedStats.size, recTeacherAfter, svcTeacherAfter),
          hit_rate: hits + misses === 0 ? 0 : hits / (hits + misses),
          evictions: recordedStats.evictions - teacherEvictions,
        });
      } else {
        expect(statsJson(cache.stats()), where).toEqual(recordedStats);
      }
      // Non-teacher entries match the recording exactly: order, expiry and value.
      const entries = [...cache.entries()];
      expect(
        entries.filter((e) => !(target === "kernel_cache" && e.key === TEACHER_KEY)).map((e) => [e.key, e.expiry, e.value]),
        where,
      ).toEqual(internal.entries.filter(([k]) => !(target === "kernel_cache" && k === TEACHER_KEY)));
      previous[target] = internal;
    }
    const teacherEntry = [...gov.kernelCache.entries()].find((e) => e.key === TEACHER_KEY);
    expect(teacherEntry?.pinned, where).toBe(svcTeacherAfter ? true : undefined);
    if (serviceTeacher !== undefined) expect(gov.teacher(), where).toEqual(serviceTeacher.value);
    expect([gov.lastGcEpoch, gov.gcCounter], where).toEqual([
      step.internal_after.manager!.last_gc_epoch,
      step.internal_after.manager!.gc_counter,
    ]);
  }
}

const managerFixtures = memoryFixtureNames("manager_");

describe("MemoryGovernor golden replay", () => {
  it("finds all seven manager recordings", () => {
    expect(managerFixtures).toHaveLength(7);
  });

  it.each(managerFixtures)("%s", (name) => replayManager(name));
});

describe("MemoryGovernor deliberate differences, stated concretely (manager_emergency.json)", () => {
  // Recording steps 11-13: teacher stored at 105 with a 5 s TTL; emergency cleanup at 115.
  it("a teacher older than the cache TTL survives emergency cleanup (decision 3)", () => {
    const clock = new FakeClock(105);
    const gov = new MemoryGovernor({ clock, kernelTtlSeconds: 5, telemetryTtlSeconds: 50 });
    gov.registerTeacher("old-teacher");
    gov.kernelCache.set("k4", "d");
    clock.mono = 115;
    // The original returned kernel_cache_cleared 2 and lost the teacher.
    expect(gov.emergencyCleanup()).toEqual({ kernelCacheCleared: 1, telemetryCacheCleared: 0, gcCollected: 0 });
    expect(gov.teacher()).toBe("old-teacher");
    expect(gov.kernelCache.stats()).toEqual({ size: 1, hitRate: 0, evictions: 0 });
  });

  // Recording steps 14-15: a teacher stored as null was dropped by the original.
  it("a null teacher is still the registered teacher and is kept", () => {
    const clock = new FakeClock(115);
    const gov = new MemoryGovernor<string | null>({ clock, kernelTtlSeconds: 5 });
    gov.registerTeacher(null);
    expect(gov.emergencyCleanup()).toEqual({ kernelCacheCleared: 0, telemetryCacheCleared: 0, gcCollected: 0 });
    expect(gov.teacher()).toBeNull();
    expect(gov.kernelCache.size).toBe(1);
  });

  it("includeTeacher removes the teacher and counts it", () => {
    const clock = new FakeClock(100);
    const gov = new MemoryGovernor({ clock });
    gov.registerTeacher({ name: "teacher-net" });
    gov.kernelCache.set("k1", "a");
    gov.telemetryCache.set("t1", 1.5);
    const result = gov.emergencyCleanup(true);
    expect(result).toEqual({ kernelCacheCleared: 2, telemetryCacheCleared: 1, gcCollected: 0 });
    expect(gov.teacher()).toBeUndefined();
    expect(emergencyEventAttributes(result, true)).toEqual({
      include_teacher: "true",
      kernel_cache_cleared: "2",
      telemetry_cache_cleared: "1",
      python_gc_collected: "0",
    });
  });
});

describe("MemoryGovernor GC accounting (KAS-H1-001)", () => {
  function setup(k: number) {
    const clock = new FakeClock(0);
    const { metrics, adds } = recordingMetrics();
    const gov = new MemoryGovernor<string, string>({ clock, metrics });
    for (let i = 0; i < k; i += 1) gov.kernelCache.set(`seed-${i}`, "kernel");
    return { clock, gov, adds };
  }

  it("spec §16 vector: k expired entries are reported at epoch 10 even after a pre-GC cleanup", () => {
    const k = 7;
    const { clock, gov, adds } = setup(k);
    clock.advance(301);
    // update_epoch(9): manager cleanup first (this is where the original lost the counts) …
    expect(gov.cleanup()).toEqual({ kernelCacheExpired: k, telemetryCacheExpired: 0 });
    expect(gov.kernelCache.size).toBe(0);
    // … then a GC that does not run: nothing is reported, nothing is forgotten.
    expect(gov.periodicGc(9)).toEqual({ ran: false, skippedReason: "frequency_not_met" });
    expect(gov.unreported()).toEqual({ kernelCacheExpired: k, telemetryCacheExpired: 0 });
    // update_epoch(10)
    expect(gov.cleanup()).toEqual({ kernelCacheExpired: 0, telemetryCacheExpired: 0 });
    const run = gov.periodicGc(10);
    expect(run).toEqual({
      ran: true,
      kernelCacheExpired: k,
      telemetryCacheExpired: 0,
      gcCollected: 0,
      gcCounter: 1,
      gcEpoch: 10,
    });
    if (!run.ran) throw new Error("unreachable");
    expect(gcEventAttributes(run)).toEqual({
      kernel_cache_expired: "7",
      telemetry_cache_expired: "0",
      python_gc_collected: "0",
      gc_counter: "1",
      gc_epoch: "10",
    });
    expect(evictionsOf(adds, "kernel")).toEqual(new Map([["cleanup", k]]));
    // The tally was reset by the report.
    expect(gov.unreported()).toEqual({ kernelCacheExpired: 0, telemetryCacheExpired: 0 });
    expect(gov.periodicGc(20)).toMatchObject({ ran: true, kernelCacheExpired: 0, gcCounter: 2 });
  });

  it("lazy expiry on get and the GC sweep both reach the report", () => {
    const { clock, gov, adds } = setup(3);
    gov.telemetryCache.set("packet-1", "p");
    clock.advance(301);
    expect(gov.kernelCache.get("seed-0")).toBeUndefined();
    const run = gov.periodicGc(10);
    expect(run).toMatchObject({ ran: true, kernelCacheExpired: 3, telemetryCacheExpired: 1 });
    expect(evictionsOf(adds, "kernel")).toEqual(
      new Map([
        ["expired_get", 1],
        ["gc", 2],
      ]),
    );
    expect(evictionsOf(adds, "telemetry")).toEqual(new Map([["gc", 1]]));
  });

  it("emergency removals are counted by the metric but not as expirations", () => {
    const { clock, gov, adds } = setup(2);
    clock.advance(301);
    expect(gov.kernelCache.get("seed-0")).toBeUndefined();
    gov.kernelCache.set("fresh", "k");
    expect(gov.emergencyCleanup()).toEqual({ kernelCacheCleared: 2, telemetryCacheCleared: 0, gcCollected: 0 });
    expect(gov.periodicGc(10)).toMatchObject({ ran: true, kernelCacheExpired: 1 });
    expect(evictionsOf(adds, "kernel")).toEqual(
      new Map([
        ["expired_get", 1],
        ["emergency", 2],
      ]),
    );
  });

  it("reports a sanitised runtime GC figure", () => {
    const figures = [12.7, -3, Number.NaN];
    const gov = new MemoryGovernor({ clock: new FakeClock(), gcFrequency: 1, collectGarbage: () => figures.shift() ?? 0 });
    expect(gov.periodicGc(1)).toMatchObject({ gcCollected: 12 });
    expect(gov.periodicGc(2)).toMatchObject({ gcCollected: 0 });
    expect(gov.emergencyCleanup().gcCollected).toBe(0);
  });

  it("the teacher has no TTL: it is never expired by cleanup or GC", () => {
    const clock = new FakeClock(0);
    const gov = new MemoryGovernor<string>({ clock, gcFrequency: 1 });
    gov.registerTeacher("teacher-model");
    clock.advance(1e6);
    expect(gov.cleanup()).toEqual({ kernelCacheExpired: 0, telemetryCacheExpired: 0 });
    expect(gov.periodicGc(1)).toMatchObject({ ran: true, kernelCacheExpired: 0 });
    expect(gov.kernelCache.get(TEACHER_KEY)).toBe("teacher-model");
  });
});
