// Memory governance (spec §11.2–§11.4): the kernel and telemetry TTL caches, periodic GC and
// emergency cleanup.
//
// KAS-H1-001: every expiry (lazy `get`, manager cleanup passes, the GC sweep) is tallied per
// cache and the tally is reported, then reset, by the next GC run, so `memory_gc` counts equal
// the entries really removed since the previous report. Emergency removals are reported by the
// emergency result instead and never enter the expiry tally.
// DESIGN §3 decision 3: the teacher is a pinned kernel-cache entry (no TTL) that survives
// emergency cleanup unless the teacher is explicitly included.

import { noopMetrics, type Clock, type Counter, type MetricsPort } from "./ports.js";
import { DEFAULT_TTL_SECONDS, TtlCache, type EvictionCause } from "./ttl-cache.js";

export const DEFAULT_GC_FREQUENCY = 10;
export const TEACHER_KEY = "teacher";
export const MEMORY_EVICTIONS_METRIC = "kasmina.memory.evictions";

export type GovernedCache = "kernel" | "telemetry";

export interface MemoryGovernorOptions {
  readonly clock: Clock;
  readonly metrics?: MetricsPort;
  readonly kernelTtlSeconds?: number;
  readonly telemetryTtlSeconds?: number;
  /** Bound on the telemetry cache's entries (oldest evicted first, cause `capacity`); unbounded when absent. */
  readonly telemetryMaxEntries?: number;
  /** ≤ 0 disables periodic GC (not clamped, as the original). */
  readonly gcFrequency?: number;
  /**
   * The runtime's collector, returning what it freed. Node has no counted collection, so the
   * default reports 0 (spec §11.3 allows "0 or a runtime-specific figure").
   */
  readonly collectGarbage?: () => number;
}

export interface CleanupCounts {
  readonly kernelCacheExpired: number;
  readonly telemetryCacheExpired: number;
}

export interface GcSkipped {
  readonly ran: false;
  readonly skippedReason: "disabled" | "frequency_not_met";
}

export interface GcRun extends CleanupCounts {
  readonly ran: true;
  readonly gcCollected: number;
  readonly gcCounter: number;
  readonly gcEpoch: number;
}

export type GcResult = GcSkipped | GcRun;

export interface EmergencyCleanupResult {
  /** Entries actually removed: a preserved teacher is not counted (unlike the original). */
  readonly kernelCacheCleared: number;
  readonly telemetryCacheCleared: number;
  readonly gcCollected: number;
}

export class MemoryGovernor<K = unknown, T = unknown> {
  readonly kernelCache: TtlCache<K>;
  readonly telemetryCache: TtlCache<T>;
  readonly gcFrequency: number;
  private readonly evictionCounter: Counter;
  private readonly collectGarbage: () => number;
  private lastGcEpochValue = 0;
  private gcCounterValue = 0;
  // Expirations not yet reported by a GC run.
  private unreportedKernel = 0;
  private unreportedTelemetry = 0;

  constructor(options: MemoryGovernorOptions) {
    const metrics = options.metrics ?? noopMetrics;
    this.evictionCounter = metrics.counter(
      MEMORY_EVICTIONS_METRIC,
      "Entries evicted from Kasmina's memory caches",
      "{entry}",
    );
    this.gcFrequency = options.gcFrequency ?? DEFAULT_GC_FREQUENCY;
    this.collectGarbage = options.collectGarbage ?? (() => 0);
    this.kernelCache = new TtlCache<K>({
      clock: options.clock,
      ttlSeconds: options.kernelTtlSeconds ?? DEFAULT_TTL_SECONDS,
      onEviction: (count, cause) => this.onEviction("kernel", count, cause),
    });
    this.telemetryCache = new TtlCache<T>({
      clock: options.clock,
      ttlSeconds: options.telemetryTtlSeconds ?? DEFAULT_TTL_SECONDS,
      ...(options.telemetryMaxEntries === undefined ? {} : { maxEntries: options.telemetryMaxEntries }),
      onEviction: (count, cause) => this.onEviction("telemetry", count, cause),
    });
  }

  get lastGcEpoch(): number {
    return this.lastGcEpochValue;
  }

  get gcCounter(): number {
    return this.gcCounterValue;
  }

  /** Expirations the next GC run will report. */
  unreported(): CleanupCounts {
    return { kernelCacheExpired: this.unreportedKernel, telemetryCacheExpired: this.unreportedTelemetry };
  }

  /** GC bookkeeping for the state store (DESIGN §2.2: epoch and GC counter survive a restart). */
  exportCounters(): { lastGcEpoch: number; gcCounter: number; unreportedKernel: number; unreportedTelemetry: number } {
    return { lastGcEpoch: this.lastGcEpochValue, gcCounter: this.gcCounterValue, unreportedKernel: this.unreportedKernel, unreportedTelemetry: this.unreportedTelemetry };
  }

  restoreCounters(c: { lastGcEpoch: number; gcCounter: number; unreportedKernel: number; unreportedTelemetry: number }): void {
    this.lastGcEpochValue = c.lastGcEpoch;
    this.gcCounterValue = c.gcCounter;
    this.unreportedKernel = c.unreportedKernel;
    this.unreportedTelemetry = c.unreportedTelemetry;
  }

  /** Stores the teacher pinned under `teacher`: no TTL, kept by emergency cleanup by default. */
  registerTeacher(teacher: K): void {
    this.kernelCache.setPinned(TEACHER_KEY, teacher);
  }

  /** The registered teacher, without touching cache statistics. */
  teacher(): K | undefined {
    return this.kernelCache.isPinned(TEACHER_KEY) ? this.kernelCache.peek(TEACHER_KEY) : undefined;
  }

  /** TTL sweep of both caches (start of every command and epoch update); returns what it removed. */
  cleanup(): CleanupCounts {
    return {
      kernelCacheExpired: this.kernelCache.cleanup("cleanup"),
      telemetryCacheExpired: this.telemetryCache.cleanup("cleanup"),
    };
  }

  periodicGc(epoch: number): GcResult {
    if (this.gcFrequency <= 0) {
      return { ran: false, skippedReason: "disabled" };
    }
    if (epoch < this.lastGcEpochValue) {
      this.lastGcEpochValue = epoch;
    }
    if (epoch - this.lastGcEpochValue < this.gcFrequency) {
      return { ran: false, skippedReason: "frequency_not_met" };
    }
    // The sweep's removals reach the tally through the eviction listener.
    this.kernelCache.cleanup("gc");
    this.telemetryCache.cleanup("gc");
    const gcCollected = this.runCollector();
    this.gcCounterValue += 1;
    this.lastGcEpochValue = epoch;
    const result: GcRun = {
      ran: true,
      kernelCacheExpired: this.unreportedKernel,
      telemetryCacheExpired: this.unreportedTelemetry,
      gcCollected,
      gcCounter: this.gcCounterValue,
      gcEpoch: epoch,
    };
    this.unreportedKernel = 0;
    this.unreportedTelemetry = 0;
    return result;
  }

  emergencyCleanup(includeTeacher = false): EmergencyCleanupResult {
    const kernelCacheCleared = this.kernelCache.clear({ keepPinned: !includeTeacher, evictionCause: "emergency" });
    const telemetryCacheCleared = this.telemetryCache.clear({ evictionCause: "emergency" });
    return { kernelCacheCleared, telemetryCacheCleared, gcCollected: this.runCollector() };
  }

  private runCollector(): number {
    const collected = this.collectGarbage();
    // Attributes must be non-negative integers whatever the runtime hook returns.
    return Number.isFinite(collected) && collected > 0 ? Math.floor(collected) : 0;
  }

  private onEviction(cache: GovernedCache, count: number, cause: EvictionCause): void {
    this.evictionCounter.add(count, { "kasmina.cache": cache, "kasmina.eviction.cause": cause });
    // The memory_gc event reports expirations (KAS-H1-001); a clear or a capacity eviction is not one.
    if (cause === "emergency" || cause === "capacity") {
      return;
    }
    if (cache === "kernel") {
      this.unreportedKernel += count;
    } else {
      this.unreportedTelemetry += count;
    }
  }
}

/** Attributes of the `memory_gc` event (spec §9.6): every key of the GC result, as decimal integers. */
export function gcEventAttributes(run: GcRun): Record<string, string> {
  return {
    kernel_cache_expired: String(run.kernelCacheExpired),
    telemetry_cache_expired: String(run.telemetryCacheExpired),
    python_gc_collected: String(run.gcCollected),
    gc_counter: String(run.gcCounter),
    gc_epoch: String(run.gcEpoch),
  };
}

/** Attributes of the `emergency_cleanup` event (spec §5.5). */
export function emergencyEventAttributes(result: EmergencyCleanupResult, includeTeacher: boolean): Record<string, string> {
  return {
    include_teacher: includeTeacher ? "true" : "false",
    kernel_cache_cleared: String(result.kernelCacheCleared),
    telemetry_cache_cleared: String(result.telemetryCacheCleared),
    python_gc_collected: String(result.gcCollected),
  };
}
