// One run's state as plain items for the state store (DESIGN §2.2), and back. Each item is its own
// key, so a change writes only what it touched: `meta`, `host`, `caches`, one `seed/<id>` per seed,
// `rollback/<id>`, `prefetch/<request id>`, one `gq/<n>` or `sq/<n>/<seed id>` per queued event,
// `packet/<n>` per unsent packet and `tcache/<packet id>` per telemetry-cache entry. Deadlines kept on
// the monotonic clock (embargo, breaker cool-downs, cache TTLs) are stored as wall-clock milliseconds,
// so they run on across a restart. Not stored, by nature: isolation sessions (re-opened at zero).
import { TelemetryEvent, TelemetryPacket, type MessagePriority, type SeedLifecycleGate, type SeedLifecycleStage } from "../leyline.js";
import type { BreakerSnapshot, BreakerStateValue, CircuitBreaker } from "./circuit-breaker.js";
import type { GateResult } from "./gates.js";
import type { Kernel } from "./kernel-runtime.js";
import type { Clock } from "./ports.js";
import type { SeedContext } from "./seed-context.js";
import type { SeedManager } from "./seed-manager.js";

/** Keys and values (JSON text) written or deleted by one acknowledged change of one run. */
export interface RunDelta {
  readonly puts: Map<string, string>;
  readonly deletes: string[];
}

interface BreakerData {
  state: BreakerStateValue;
  failureCount: number;
  successCount: number;
  openUntilMs: number | null;
}

interface QueueData {
  dropped: number;
  pushedTotal: number;
}

interface MetaData {
  epoch: number;
  globalPriority: MessagePriority;
  packetCounter: number;
  lastPriority: MessagePriority;
  globalViolations: number;
  lastFetchLatencyMs: number;
  lastFallbackUsed: boolean;
  lastRollbackLatencyMs: number;
  globalQueue: QueueData;
  kernelBreaker: BreakerData;
  isolationBreaker: BreakerData;
  gc: ReturnType<SeedManager["memory"]["exportCounters"]>;
  packetsDropped: number;
  lastActivityMs: number;
  /** Next creation number for a seed: seeds come back in the order they were created. */
  nextSeedOrder: number;
}

interface SeedData {
  order: number;
  stage: SeedLifecycleStage;
  metadata: [string, string][];
  gates: [SeedLifecycleGate, GateResult][];
  lastKernelLatencyMs: number;
  usedFallback: boolean;
  kernelAttached: boolean;
  embargoUntilMs: number | null;
  isolationViolations: number;
  kernel: Kernel | null;
  alpha: number;
  alphaSteps: number;
  pendingPriority: MessagePriority;
  lastStepEmitted: string | null;
  queue: QueueData;
  ephemeral: boolean;
  parameters: string[] | null;
}

interface CacheEntryData {
  key: string;
  expiresAtMs: number | null;
  value: unknown;
}

interface CachesData {
  kernel: { entries: CacheEntryData[]; counters: { hits: number; misses: number; evictions: number } };
  telemetryCounters: { hits: number; misses: number; evictions: number };
  gpu: { entries: [string, Kernel][]; hits: number; misses: number; evictions: number } | null;
}

const pad = (n: number): string => n.toString().padStart(12, "0");
const GLOBAL_OWNER = "";
const queueKey = (owner: string, n: number): string => (owner === GLOBAL_OWNER ? `gq/${pad(n)}` : `sq/${pad(n)}/${owner}`);

/**
 * Monotonic seconds ⇄ wall-clock milliseconds. The two clocks drift apart by fractions of a
 * millisecond between calls, so each deadline is converted once and remembered: an unchanged
 * deadline then serializes to the same text and its item is not rewritten.
 */
class Deadlines {
  private readonly wallOf = new Map<number, number>();
  constructor(private readonly clock: Clock) {}

  toWall(mono: number): number {
    let wall = this.wallOf.get(mono);
    if (wall === undefined) {
      if (this.wallOf.size > 4096) this.wallOf.clear();
      wall = Math.round(this.clock.wallMs() + (mono - this.clock.monotonic()) * 1000);
      this.wallOf.set(mono, wall);
    }
    return wall;
  }

  toMono(wallMs: number): number {
    const mono = this.clock.monotonic() + (wallMs - this.clock.wallMs()) / 1000;
    this.wallOf.set(mono, wallMs);
    return mono;
  }

  breaker(s: BreakerSnapshot): BreakerData {
    return { state: s.state, failureCount: s.failureCount, successCount: s.successCount, openUntilMs: s.openUntil === null ? null : this.toWall(s.openUntil) };
  }

  restoreBreaker(breaker: CircuitBreaker, d: BreakerData): void {
    breaker.restore({ state: d.state, failureCount: d.failureCount, successCount: d.successCount, openUntil: d.openUntilMs === null ? null : this.toMono(d.openUntilMs) });
  }
}

/** Tracks what was last written for one run, so each change carries only its differences. */
export class RunPersistence {
  private objects = new Map<string, string>();
  /** Persisted event numbers per queue owner ("" = the global queue): [start, end). */
  private queues = new Map<string, [number, number]>();
  private packetRange: [number, number] = [0, 0];
  private tcache = new Set<string>();
  /** The telemetry cache's change count at the last capture (-1: never captured). */
  private tcacheChanges = -1;
  private readonly packetJson = new WeakMap<TelemetryPacket, string>();
  private readonly time: Deadlines;
  /** Creation numbers by context object, so a seed re-created under its id sorts as new. */
  private readonly seedOrder = new WeakMap<SeedContext, number>();
  private nextSeedOrder = 0;
  lastActivityMs = 0;

  constructor(
    private readonly manager: SeedManager,
    clock: Clock,
  ) {
    this.time = new Deadlines(clock);
  }

  /** The differences since the last capture (the first capture writes everything). */
  capture(): RunDelta {
    const puts = new Map<string, string>();
    const deletes: string[] = [];
    const m = this.manager;
    const s = m.state;
    const objects = new Map<string, string>();
    objects.set("host", JSON.stringify({ hostParameters: [...s.hostParameters], teacherParameters: m.registry.teacherParameters() }));
    objects.set("caches", JSON.stringify(this.caches()));
    for (const ctx of s.seeds.values()) {
      if (!this.seedOrder.has(ctx)) this.seedOrder.set(ctx, this.nextSeedOrder++);
    }
    objects.set("meta", JSON.stringify(this.meta()));
    for (const ctx of s.seeds.values()) objects.set(`seed/${ctx.seedId}`, JSON.stringify(this.seed(ctx)));
    for (const [seedId, record] of s.rollbacks) objects.set(`rollback/${seedId}`, JSON.stringify(record));
    for (const [requestId, pending] of s.pendingPrefetch) objects.set(`prefetch/${requestId}`, JSON.stringify(pending));
    for (const key of this.objects.keys()) if (!objects.has(key)) deletes.push(key);
    for (const [key, value] of objects) if (this.objects.get(key) !== value) puts.set(key, value);
    this.objects = objects;

    // Queues, packets and cache entries are append-mostly: each element is written once.
    const queues = new Map<string, [number, number]>();
    const owners: [string, SeedManager["state"]["globalQueue"]][] = [[GLOBAL_OWNER, s.globalQueue]];
    for (const ctx of s.seeds.values()) owners.push([ctx.seedId, ctx.queue]);
    for (const [owner, queue] of owners) {
      const range: [number, number] = [queue.pushedTotal - queue.realLength, queue.pushedTotal];
      queues.set(owner, range);
      const [start, end] = this.queues.get(owner) ?? [range[0], range[0]];
      for (let n = start; n < Math.min(end, range[0]); n++) deletes.push(queueKey(owner, n));
      const first = Math.max(end, range[0]);
      if (first < range[1]) {
        const events = queue.realEventsFrom(first - range[0]);
        for (let n = first; n < range[1]; n++) puts.set(queueKey(owner, n), JSON.stringify(TelemetryEvent.toJSON(events[n - first] as TelemetryEvent)));
      }
    }
    for (const [owner, [start, end]] of this.queues) {
      if (queues.has(owner)) continue;
      for (let n = start; n < end; n++) deletes.push(queueKey(owner, n));
    }
    this.queues = queues;

    const logged = m.packets.peek();
    const range: [number, number] = [s.packetCounter - logged.length, s.packetCounter];
    for (let n = this.packetRange[0]; n < Math.min(this.packetRange[1], range[0]); n++) deletes.push(`packet/${pad(n)}`);
    for (let n = Math.max(this.packetRange[1], range[0]); n < range[1]; n++) puts.set(`packet/${pad(n)}`, this.json(logged[n - range[0]] as TelemetryPacket));
    this.packetRange = range;

    // The cache is scanned only when it changed since the last capture (most calls add nothing).
    const cache = m.memory.telemetryCache;
    if (cache.changeCount !== this.tcacheChanges) {
      const cached = new Set<string>();
      for (const entry of cache.entries()) {
        cached.add(entry.key);
        if (this.tcache.has(entry.key)) continue;
        const packet = entry.value;
        puts.set(`tcache/${entry.key}`, `{"order":${s.packetCounter},"expiresAtMs":${this.time.toWall(entry.expiry)},"packet":${this.json(packet)}}`);
      }
      for (const key of this.tcache) if (!cached.has(key)) deletes.push(`tcache/${key}`);
      this.tcache = cached;
      this.tcacheChanges = cache.changeCount;
    }
    // A key deleted and written again in one change (a seed re-created under its id) is written.
    return { puts, deletes: deletes.filter((key) => !puts.has(key)) };
  }

  /** Rebuilds the run from its items (after a restart); the next capture() writes nothing new. */
  restore(items: ReadonlyMap<string, string>): void {
    const m = this.manager;
    const s = m.state;
    const time = this.time;
    const parse = <T>(key: string): T | undefined => {
      const text = items.get(key);
      return text === undefined ? undefined : (JSON.parse(text) as T);
    };
    const queued = new Map<string, [number, TelemetryEvent][]>();
    const packets: [number, TelemetryPacket][] = [];
    const cached: { order: number; key: string; expiresAtMs: number; packet: TelemetryPacket }[] = [];
    for (const [key, text] of items) {
      if (key.startsWith("gq/") || key.startsWith("sq/")) {
        const n = Number(key.slice(3, 15));
        const owner = key.startsWith("gq/") ? GLOBAL_OWNER : key.slice(16);
        const list = queued.get(owner) ?? [];
        list.push([n, TelemetryEvent.fromJSON(JSON.parse(text))]);
        queued.set(owner, list);
      } else if (key.startsWith("packet/")) {
        packets.push([Number(key.slice(7)), TelemetryPacket.fromJSON(JSON.parse(text))]);
      } else if (key.startsWith("tcache/")) {
        const v = JSON.parse(text) as { order: number; expiresAtMs: number; packet: unknown };
        cached.push({ order: v.order, key: key.slice(7), expiresAtMs: v.expiresAtMs, packet: TelemetryPacket.fromJSON(v.packet) });
      } else if (key.startsWith("rollback/")) {
        s.rollbacks.set(key.slice(9), JSON.parse(text) as Record<string, string>);
      } else if (key.startsWith("prefetch/")) {
        s.pendingPrefetch.set(key.slice(9), JSON.parse(text) as { seedId: string; blueprintId: string });
      }
    }
    const eventsOf = (owner: string): TelemetryEvent[] => (queued.get(owner) ?? []).sort((a, b) => a[0] - b[0]).map(([, e]) => e);

    const meta = parse<MetaData>("meta");
    if (meta !== undefined) {
      s.epoch = meta.epoch;
      s.globalPriority = meta.globalPriority;
      s.packetCounter = meta.packetCounter;
      s.lastPriorityValue = meta.lastPriority;
      s.globalViolations = meta.globalViolations;
      s.lastFetchLatencyMs = meta.lastFetchLatencyMs;
      s.lastFallbackUsed = meta.lastFallbackUsed;
      s.lastRollbackLatencyMs = meta.lastRollbackLatencyMs;
      s.globalQueue.restore(meta.globalQueue.dropped, eventsOf(GLOBAL_OWNER), meta.globalQueue.pushedTotal);
      time.restoreBreaker(m.kernelBreaker, meta.kernelBreaker);
      time.restoreBreaker(m.isolationBreaker, meta.isolationBreaker);
      m.memory.restoreCounters(meta.gc);
      this.lastActivityMs = meta.lastActivityMs;
      this.nextSeedOrder = meta.nextSeedOrder;
      for (const [, packet] of packets.sort((a, b) => a[0] - b[0])) m.packets.append(packet);
      m.packets.restoreDropped(meta.packetsDropped);
    }
    const host = parse<{ hostParameters: string[]; teacherParameters: string[] }>("host");
    if (host !== undefined) {
      s.hostParameters = new Set(host.hostParameters);
      m.registry.registerTeacher(host.teacherParameters);
    }
    const caches = parse<CachesData>("caches");
    if (caches !== undefined) {
      m.memory.kernelCache.restore(
        caches.kernel.entries.map((e) => ({ key: e.key, value: e.value, pinned: e.expiresAtMs === null, expiry: e.expiresAtMs === null ? Number.POSITIVE_INFINITY : time.toMono(e.expiresAtMs) })),
        caches.kernel.counters,
      );
      m.memory.telemetryCache.restore(
        cached.sort((a, b) => a.order - b.order || a.expiresAtMs - b.expiresAtMs).map((e) => ({ key: e.key, value: e.packet, pinned: false, expiry: time.toMono(e.expiresAtMs) })),
        caches.telemetryCounters,
      );
      if (caches.gpu !== null) m.gpuCache?.restore(caches.gpu);
    }
    const seeds: [string, SeedData][] = [];
    for (const [key, text] of items) if (key.startsWith("seed/")) seeds.push([key.slice(5), JSON.parse(text) as SeedData]);
    for (const [seedId, d] of seeds.sort((a, b) => a[1].order - b[1].order)) {
      const ctx = m.adoptRestoredSeed(seedId, d.ephemeral);
      this.seedOrder.set(ctx, d.order);
      ctx.stage = d.stage;
      for (const [k, v] of d.metadata) ctx.metadata.set(k, v);
      for (const [gate, result] of d.gates) ctx.lastGateResults.set(gate, result);
      ctx.lastKernelLatencyMs = d.lastKernelLatencyMs;
      ctx.usedFallback = d.usedFallback;
      ctx.kernelAttached = d.kernelAttached;
      ctx.embargoUntil = d.embargoUntilMs === null ? null : time.toMono(d.embargoUntilMs);
      ctx.isolationViolations = d.isolationViolations;
      ctx.kernel = d.kernel ?? undefined;
      ctx.alpha = d.alpha;
      ctx.alphaSteps = d.alphaSteps;
      ctx.pendingPriority = d.pendingPriority;
      ctx.lastStepEmitted = d.lastStepEmitted === null ? undefined : BigInt(d.lastStepEmitted);
      ctx.queue.restore(d.queue.dropped, eventsOf(ctx.seedId), d.queue.pushedTotal);
      if (d.parameters !== null) m.registry.restoreSeed(ctx.seedId, d.parameters);
    }
    m.reopenSessions();
    // Everything just loaded is what the store holds: remember it so the next change is a delta.
    this.capture();
  }

  private json(packet: TelemetryPacket): string {
    let text = this.packetJson.get(packet);
    if (text === undefined) {
      text = JSON.stringify(TelemetryPacket.toJSON(packet));
      this.packetJson.set(packet, text);
    }
    return text;
  }

  private meta(): MetaData {
    const m = this.manager;
    const s = m.state;
    return {
      epoch: s.epoch,
      globalPriority: s.globalPriority,
      packetCounter: s.packetCounter,
      lastPriority: s.lastPriorityValue,
      globalViolations: s.globalViolations,
      lastFetchLatencyMs: s.lastFetchLatencyMs,
      lastFallbackUsed: s.lastFallbackUsed,
      lastRollbackLatencyMs: s.lastRollbackLatencyMs,
      globalQueue: { dropped: s.globalQueue.dropped, pushedTotal: s.globalQueue.pushedTotal },
      kernelBreaker: this.time.breaker(m.kernelBreaker.snapshot()),
      isolationBreaker: this.time.breaker(m.isolationBreaker.snapshot()),
      gc: m.memory.exportCounters(),
      packetsDropped: m.packets.dropped,
      lastActivityMs: this.lastActivityMs,
      nextSeedOrder: this.nextSeedOrder,
    };
  }

  private caches(): CachesData {
    const m = this.manager;
    const kernelEntries: CacheEntryData[] = [];
    for (const e of m.memory.kernelCache.entries()) {
      kernelEntries.push({ key: e.key, expiresAtMs: e.pinned ? null : this.time.toWall(e.expiry), value: e.value });
    }
    return {
      kernel: { entries: kernelEntries, counters: m.memory.kernelCache.counters() },
      telemetryCounters: m.memory.telemetryCache.counters(),
      gpu: m.gpuCache === undefined ? null : m.gpuCache.exportState(),
    };
  }

  private seed(ctx: SeedContext): SeedData {
    const m = this.manager;
    return {
      order: this.seedOrder.get(ctx) ?? 0,
      stage: ctx.stage,
      metadata: [...ctx.metadata],
      gates: [...ctx.lastGateResults],
      lastKernelLatencyMs: ctx.lastKernelLatencyMs,
      usedFallback: ctx.usedFallback,
      kernelAttached: ctx.kernelAttached,
      embargoUntilMs: ctx.embargoUntil === null ? null : this.time.toWall(ctx.embargoUntil),
      isolationViolations: ctx.isolationViolations,
      kernel: ctx.kernel ?? null,
      alpha: ctx.alpha,
      alphaSteps: ctx.alphaSteps,
      pendingPriority: ctx.pendingPriority,
      lastStepEmitted: ctx.lastStepEmitted === undefined ? null : ctx.lastStepEmitted.toString(),
      queue: { dropped: ctx.queue.dropped, pushedTotal: ctx.queue.pushedTotal },
      ephemeral: m.isEphemeral(ctx.seedId),
      parameters: m.registry.parametersOf(ctx.seedId) ?? null,
    };
  }
}
