// SeedManager telemetry (spec §9, §10, §11.3, §11.5): packet ids and shape, health, metrics,
// priorities, flush rules, queue bounding through handleCommand and GC counts end to end.
import { afterEach, describe, expect, it, vi } from "vitest";
import type { IsolationPort, IsolationSessionHandle } from "../../src/kasmina/seed-manager.js";
import { CommandType, HealthStatus, MessagePriority, SeedOperation, TelemetryLevel, type TelemetryPacket } from "../../src/leyline.js";
import { allEvents, find, makeManager, names, seedCommand, signed } from "./manager-support.js";

const HOST = [{ key: "host.w", shape: [2], trainable: true, elementBytes: 4 }];
const GERMINATE = SeedOperation.SEED_OP_GERMINATE;
const metricNames = (p: TelemetryPacket | undefined): string[] => (p?.metrics ?? []).map((m) => m.name);
const metricValue = (p: TelemetryPacket | undefined, name: string): number | undefined => p?.metrics.find((m) => m.name === name)?.value;
const optimizer = (clock: Parameters<typeof signed>[0]) => signed(clock, { commandType: CommandType.COMMAND_OPTIMIZER });

afterEach(() => {
  vi.restoreAllMocks();
});

describe("packet shape and identifiers (spec §9.1, §9.2)", () => {
  it("seed and global packet ids use the running packet counter; events get evt-<n> per packet", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "a", GERMINATE));
    manager.handleCommand(seedCommand(clock, "b", GERMINATE));
    manager.handleCommand(optimizer(clock));
    expect(manager.finalizeStep(5n)).toBe(3);
    manager.handleCommand(optimizer(clock));
    manager.recordIsolationViolation("a");
    manager.finalizeStep(undefined);
    const packets = manager.packets.peek();
    expect(packets.map((p) => p.packetId)).toEqual(["kasmina-seed-a-0", "kasmina-seed-b-1", "kasmina-global-2", "kasmina-seed-a-3", "kasmina-global-4"]);
    for (const p of packets) {
      expect(p.sourceSubsystem).toBe("kasmina");
      expect(p.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_INFO);
      expect(p.spans).toEqual([]);
      expect(p.timestamp).toEqual({ seconds: 1_790_000_000n, nanos: 0 });
      expect(p.events.map((e) => e.eventId)).toEqual(p.events.map((_, i) => `evt-${i + 1}`));
    }
    expect(packets[0]?.systemHealth?.indicators).toEqual({ seed_id: "a", priority: "MESSAGE_PRIORITY_HIGH", step_index: "5" });
    expect(packets[2]?.systemHealth?.indicators).toEqual({ seeds: "2", priority: "MESSAGE_PRIORITY_NORMAL", step_index: "5" });
    expect(packets[4]?.systemHealth?.indicators.get("step_index")).toBe("");
    // Every packet is cached in the telemetry TTL cache under its id.
    expect([...manager.memory.telemetryCache.entries()].map((e) => e.key)).toEqual(packets.map((p) => p.packetId));
  });

  it("packet listeners see every emitted packet, and a throwing listener is ignored", () => {
    const { manager, clock } = makeManager();
    const seen: string[] = [];
    manager.packets.subscribe(() => {
      throw new Error("boom");
    });
    manager.packets.subscribe((p) => seen.push(p.packetId));
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_EMERGENCY }));
    manager.recordIsolationViolation("x");
    manager.finalizeStep(undefined);
    expect(seen).toEqual(["kasmina-global-0", "kasmina-seed-x-1"]);
  });

  it("seed_stage is synthesised last in every seed packet with alpha at 4 dp", () => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE));
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_START_GRAFTING));
    manager.finalizeStep(1n);
    const [packet] = manager.packets.peek();
    const last = packet?.events.at(-1);
    expect(last?.description).toBe("seed_stage");
    expect(last?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_INFO);
    expect(last?.attributes).toEqual({ seed_id: "s1", stage: "SEED_STAGE_BLENDING", alpha: "0.0110" });
    expect(manager.seedView("s1")?.metadata.get("last_stage_event")).toBe("SEED_STAGE_BLENDING");
  });
});

describe("health (spec §9.3)", () => {
  it("seed: HEALTHY nominal, DEGRADED fallback, UNHEALTHY violations; performance_status follows", () => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    runtime.failing.add("BAD");
    manager.handleCommand(seedCommand(clock, "ok", GERMINATE));
    manager.handleCommand(seedCommand(clock, "fb", GERMINATE, "BAD"));
    manager.recordIsolationViolation("v");
    manager.finalizeStep(1n);
    const bySeed = new Map(manager.packets.peek().map((p) => [p.systemHealth?.indicators.get("seed_id"), p.systemHealth]));
    expect(bySeed.get("ok")).toMatchObject({ status: HealthStatus.HEALTH_STATUS_HEALTHY, summary: "nominal" });
    expect(bySeed.get("fb")).toMatchObject({ status: HealthStatus.HEALTH_STATUS_DEGRADED, summary: "fallback" });
    expect(bySeed.get("v")).toMatchObject({ status: HealthStatus.HEALTH_STATUS_UNHEALTHY, summary: "violations" });
    expect(manager.seedView("ok")?.metadata.get("performance_status")).toBe("nominal");
    expect(manager.seedView("fb")?.metadata.get("performance_status")).toBe("fallback");
  });

  it("seed: DEGRADED latency_high when the seed latency exceeds the budget without a fallback", () => {
    const { manager, clock, runtime } = makeManager({ gpuCacheCapacity: 0 });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE, "BP002"));
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_PAUSE, targetSeedId: "s1" }));
    runtime.latencies["BP002"] = 20; // resume records the runtime latency with no budget check
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_PAUSE, targetSeedId: "s1", annotations: new Map(Object.entries({ resume: "true" })) }));
    manager.finalizeStep(1n);
    const [packet] = manager.packets.peek();
    expect(packet?.systemHealth).toMatchObject({ status: HealthStatus.HEALTH_STATUS_DEGRADED, summary: "latency_high" });
    expect(manager.seedView("s1")?.metadata.get("performance_status")).toBe("latency_high");
  });

  it("seed: a healthy packet leaves a sticky performance_status (e.g. paused) alone", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE));
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_PAUSE, targetSeedId: "s1" }));
    manager.finalizeStep(1n);
    expect(manager.packets.peek()[0]?.systemHealth?.summary).toBe("nominal");
    expect(manager.seedView("s1")?.metadata.get("performance_status")).toBe("paused");
  });

  it("global: fallback_applied / isolation_violations are synthesised but do not raise the priority", () => {
    const { manager, clock, runtime } = makeManager();
    manager.handleCommand(optimizer(clock));
    manager.finalizeStep(undefined);
    let packet: TelemetryPacket | undefined = manager.packets.drain()[0];
    expect(packet?.systemHealth).toEqual({ status: HealthStatus.HEALTH_STATUS_HEALTHY, summary: "nominal", indicators: { seeds: "0", priority: "MESSAGE_PRIORITY_NORMAL", step_index: "" } });
    expect(names(packet?.events ?? [])).toEqual(["optimizer_adjust"]);

    runtime.latencies["SLOW"] = 30;
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE, "SLOW"));
    manager.handleCommand(optimizer(clock));
    manager.finalizeStep(undefined);
    packet = manager.packets.drain().find((p) => p.packetId.startsWith("kasmina-global-"));
    expect(packet?.systemHealth).toMatchObject({ status: HealthStatus.HEALTH_STATUS_DEGRADED, summary: "fallback" });
    expect(packet?.events.map((e) => [e.description, e.level, e.attributes])).toEqual([
      ["optimizer_adjust", TelemetryLevel.TELEMETRY_LEVEL_INFO, { command_type: "COMMAND_OPTIMIZER", optimizer_id: "" }],
      ["fallback_applied", TelemetryLevel.TELEMETRY_LEVEL_WARNING, { lat: "30.0" }],
    ]);
    expect(packet?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_NORMAL");

    manager.recordIsolationViolation("");
    manager.finalizeStep(undefined);
    packet = manager.packets.drain().find((p) => p.packetId.startsWith("kasmina-global-"));
    expect(packet?.systemHealth).toMatchObject({ status: HealthStatus.HEALTH_STATUS_UNHEALTHY, summary: "violations" });
    expect(names(packet?.events ?? [])).toEqual(["violation_recorded", "isolation_breaker", "fallback_applied", "isolation_violations"]);
    expect(find(packet?.events ?? [], "isolation_violations")[0]?.attributes).toEqual({ violations: "1" });
    expect(find(packet?.events ?? [], "violation_recorded")[0]?.attributes).toEqual({ violations: "1" });
    expect(find(packet?.events ?? [], "isolation_breaker")[0]?.attributes).toEqual({ component: "isolation", breaker_state: "CIRCUIT_STATE_CLOSED", action: "count", reason: "isolation_violation" });
    expect(packet?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_HIGH");
  });
});

describe("metrics (spec §9.5)", () => {
  const GLOBAL_WITH_GPU = [
    "kasmina.seeds.active",
    "kasmina.isolation.violations",
    "kasmina.kernel.fetch_latency_ms",
    "kasmina.breaker.state",
    "kasmina.breaker.failures",
    "kasmina.cache.kernel_size",
    "kasmina.cache.kernel_hit_rate",
    "kasmina.cache.kernel_evictions",
    "kasmina.cache.gpu_size",
    "kasmina.cache.gpu_capacity",
    "kasmina.cache.gpu_hit_rate",
    "kasmina.cache.gpu_evictions",
    "kasmina.cache.telemetry_size",
  ];
  const SEED = [
    "kasmina.seed.stage",
    "kasmina.seed.alpha",
    "kasmina.seed.kernel_attached",
    "kasmina.seed.kernel_latency_ms",
    "kasmina.seed.last_kernel_latency_ms",
    "kasmina.seed.isolation_violations",
    "kasmina.seed.fallback_used",
  ];

  it("names, units, values and order of a seed packet after a clean germinate", () => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    runtime.latencies["BP001"] = 3;
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE));
    manager.finalizeStep(1n);
    const [packet] = manager.packets.peek();
    expect(packet?.metrics.map((m) => [m.name, m.value, m.unit, m.attributes])).toEqual([
      ["kasmina.seeds.active", 1, "count", {}],
      ["kasmina.isolation.violations", 0, "count", {}],
      ["kasmina.kernel.fetch_latency_ms", 3, "ms", {}],
      ["kasmina.breaker.state", 1, "state", {}],
      ["kasmina.breaker.failures", 0, "count", {}],
      ["kasmina.cache.kernel_size", 1, "count", {}],
      ["kasmina.cache.kernel_hit_rate", 0, "ratio", {}],
      ["kasmina.cache.kernel_evictions", 0, "count", {}],
      ["kasmina.cache.gpu_size", 1, "count", {}],
      ["kasmina.cache.gpu_capacity", 32, "count", {}],
      ["kasmina.cache.gpu_hit_rate", 0, "ratio", {}],
      ["kasmina.cache.gpu_evictions", 0, "count", {}],
      ["kasmina.cache.telemetry_size", 0, "count", {}],
      ["kasmina.seed.stage", 6, "state", { seed_id: "s1" }],
      ["kasmina.seed.alpha", 1, "ratio", { seed_id: "s1" }],
      ["kasmina.seed.kernel_attached", 1, "flag", { seed_id: "s1" }],
      ["kasmina.seed.kernel_latency_ms", 3, "ms", { seed_id: "s1" }],
      ["kasmina.seed.last_kernel_latency_ms", 3, "ms", { seed_id: "s1" }],
      ["kasmina.seed.isolation_violations", 0, "count", { seed_id: "s1" }],
      ["kasmina.seed.fallback_used", 0, "flag", { seed_id: "s1" }],
    ]);
  });

  it("no GPU cache metrics when the GPU cache is disabled; alpha_steps only while BLENDING", () => {
    const { manager, clock } = makeManager({ gpuCacheCapacity: 0, pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE));
    manager.finalizeStep(1n);
    let packet: TelemetryPacket | undefined = manager.packets.drain()[0];
    const noGpu = GLOBAL_WITH_GPU.filter((n) => !n.includes(".gpu_"));
    expect(metricNames(packet)).toEqual([...noGpu, ...SEED]);

    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_START_GRAFTING));
    manager.finalizeStep(2n);
    packet = manager.packets.drain()[0];
    expect(metricNames(packet)).toEqual([...noGpu, ...SEED, "kasmina.seed.alpha_steps"]);
    expect(packet?.metrics.at(-1)).toEqual({ name: "kasmina.seed.alpha_steps", value: 1, unit: "count", attributes: { seed_id: "s1" } });

    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_STABILIZE));
    manager.finalizeStep(3n);
    expect(metricNames(manager.packets.drain()[0])).not.toContain("kasmina.seed.alpha_steps");
  });

  it("isolation metrics appear only for a seed with a session", () => {
    const session: IsolationSessionHandle = {
      collecting: true,
      enableCollection: () => undefined,
      disableCollection: () => undefined,
      reset: () => undefined,
      close: () => undefined,
      stats: () => ({ hostNorm: 3, seedNorm: 4, dotProduct: 0.5 }),
    };
    const isolation: IsolationPort = { openSession: () => session };
    const { manager, clock } = makeManager({ isolation, pacing: "driven" });
    manager.handleCommand(seedCommand(clock, "nohost", GERMINATE)); // no host ⇒ no session
    manager.registerHost(HOST); // re-creates sessions for attached seeds (decision 13)
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE));
    manager.recordIsolationViolation("eph");
    manager.finalizeStep(1n);
    const packets = manager.packets.peek();
    const s1 = packets.find((p) => p.systemHealth?.indicators.get("seed_id") === "s1");
    expect(s1?.metrics.slice(-3)).toEqual([
      { name: "kasmina.seed.isolation.dot", value: 0.5, unit: "dot", attributes: { seed_id: "s1" } },
      { name: "kasmina.seed.isolation.host_norm", value: 3, unit: "grad", attributes: { seed_id: "s1" } },
      { name: "kasmina.seed.isolation.seed_norm", value: 4, unit: "grad", attributes: { seed_id: "s1" } },
    ]);
    const eph = packets.find((p) => p.systemHealth?.indicators.get("seed_id") === "eph");
    expect(metricNames(eph)).not.toContain("kasmina.seed.isolation.dot");
    expect(metricNames(packets.find((p) => p.systemHealth?.indicators.get("seed_id") === "nohost"))).toContain("kasmina.seed.isolation.dot");
  });

  it("kasmina.rollback.latency_ms appears only once a rollback took > 0 ms", () => {
    const { manager, clock, runtime } = makeManager();
    runtime.latencies["SLOW"] = 50;
    manager.handleCommand(optimizer(clock));
    manager.finalizeStep(undefined);
    expect(metricNames(manager.packets.drain()[0])).not.toContain("kasmina.rollback.latency_ms");

    // A rollback measured as 0 ms still does not surface.
    vi.spyOn(performance, "now").mockReturnValue(100);
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE, "SLOW"));
    manager.finalizeStep(undefined);
    let packet: TelemetryPacket | undefined = manager.packets.drain()[0];
    expect(find(packet?.events ?? [], "rollback_ready")[0]?.attributes.get("latency_ms")).toBe("0.000");
    expect(metricNames(packet)).not.toContain("kasmina.rollback.latency_ms");

    let t = 200;
    vi.spyOn(performance, "now").mockImplementation(() => (t += 0.25));
    manager.handleCommand(seedCommand(clock, "s2", GERMINATE, "SLOW"));
    manager.finalizeStep(undefined);
    packet = manager.packets.drain().find((p) => p.packetId.startsWith("kasmina-seed-s2-"));
    expect(find(packet?.events ?? [], "rollback_ready")[0]?.attributes.get("latency_ms")).toBe("0.250");
    expect(packet?.metrics.find((m) => m.name === "kasmina.rollback.latency_ms")).toEqual({ name: "kasmina.rollback.latency_ms", value: 0.25, unit: "ms", attributes: {} });
    expect(metricNames(packet).indexOf("kasmina.rollback.latency_ms")).toBe(metricNames(packet).indexOf("kasmina.cache.telemetry_size") + 1);
  });

  it("global metrics are computed once per flush: every seed packet of one finalizeStep carries the same ones", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    for (const id of ["a", "b", "c"]) manager.handleCommand(seedCommand(clock, id, GERMINATE));
    manager.recordIsolationViolation("eph");
    manager.finalizeStep(1n);
    const packets = manager.packets.peek().filter((p) => p.packetId.startsWith("kasmina-seed-"));
    expect(packets).toHaveLength(4);
    const globals = (p: TelemetryPacket) => p.metrics.filter((m) => !m.name.startsWith("kasmina.seed."));
    for (const p of packets) expect(globals(p)).toEqual(globals(packets[0] as TelemetryPacket));
    expect(metricValue(packets[3], "kasmina.cache.telemetry_size")).toBe(0);
    expect(metricValue(packets[3], "kasmina.seeds.active")).toBe(4);
    expect(manager.hasSeed("eph")).toBe(false);
  });
});

describe("priorities (spec §9.4)", () => {
  it("seed packet priority is the max of pending and final events; lastPriority tracks the last packet", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE));
    expect(manager.seedView("s1")?.pendingPriority).toBe(MessagePriority.MESSAGE_PRIORITY_HIGH);
    manager.finalizeStep(1n);
    expect(manager.lastPriority).toBe(MessagePriority.MESSAGE_PRIORITY_HIGH);
    expect(manager.seedView("s1")?.pendingPriority).toBe(MessagePriority.MESSAGE_PRIORITY_NORMAL);
    manager.finalizeStep(2n); // heartbeat: only seed_stage
    const beat = manager.packets.peek().at(-1);
    expect(names(beat?.events ?? [])).toEqual(["seed_stage"]);
    expect(beat?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_NORMAL");
    expect(manager.lastPriority).toBe(MessagePriority.MESSAGE_PRIORITY_NORMAL);
  });

  it("ERROR events (command_rejected) raise the global packet to HIGH", () => {
    const { manager, clock } = makeManager();
    const cmd = optimizer(clock);
    cmd.annotations.set("signature", "");
    manager.handleCommand(cmd);
    manager.finalizeStep(undefined);
    expect(manager.packets.peek()[0]?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_HIGH");
  });

  it("teacher_registered is INFO within 7 GB and WARNING (HIGH) above it; buffers count", () => {
    const { manager } = makeManager();
    const sevenGiB = 7 * 2 ** 28; // float32 elements
    const atBudget = manager.registerTeacher([{ key: "t.w", shape: [sevenGiB], trainable: true, elementBytes: 4 }], []);
    expect(atBudget).toEqual({ memoryGb: 7, budgetGb: 7, overBudget: false });
    manager.finalizeStep(undefined);
    let packet: TelemetryPacket | undefined = manager.packets.drain()[0];
    expect(packet?.events.map((e) => [e.description, e.level, e.attributes])).toEqual([
      ["teacher_registered", TelemetryLevel.TELEMETRY_LEVEL_INFO, { memory_gb: "7.00", budget_gb: "7.00" }],
    ]);
    expect(packet?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_NORMAL");

    const over = manager.registerTeacher(
      [{ key: "t.w", shape: [2 ** 30], trainable: true, elementBytes: 4 }],
      [{ key: "t.buf", shape: [2 ** 30], trainable: false, elementBytes: 4 }],
    );
    expect(over.overBudget).toBe(true);
    manager.finalizeStep(undefined);
    packet = manager.packets.drain()[0];
    expect(packet?.events.map((e) => [e.description, e.level, e.attributes])).toEqual([
      ["teacher_registered", TelemetryLevel.TELEMETRY_LEVEL_WARNING, { memory_gb: "8.00", budget_gb: "7.00" }],
    ]);
    expect(packet?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_HIGH");
    // Trainable teacher parameters are protected from seed updates.
    expect(manager.validateParameters("s1", ["t.w"])).toBe(false);
  });
});

describe("finalizeStep flush rules (spec §9.7)", () => {
  it("heartbeats: one packet per managed seed per new step index; same index with empty queues emits nothing", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "a", GERMINATE));
    manager.handleCommand(seedCommand(clock, "b", GERMINATE));
    expect(manager.finalizeStep(1n)).toBe(2);
    expect(manager.finalizeStep(1n)).toBe(0);
    expect(manager.finalizeStep(2n)).toBe(2);
    const beats = manager.packets.peek().slice(2);
    expect(beats.map((p) => [p.systemHealth?.indicators.get("seed_id"), p.systemHealth?.indicators.get("step_index"), names(p.events)])).toEqual([
      ["a", "2", ["seed_stage"]],
      ["b", "2", ["seed_stage"]],
    ]);
    // Without a step index only seeds with queued events emit.
    expect(manager.finalizeStep(undefined)).toBe(0);
    manager.recordIsolationViolation("a");
    expect(manager.finalizeStep(undefined)).toBe(1);
    expect(manager.packets.peek().at(-1)?.systemHealth?.indicators).toMatchObject({ seed_id: "a", step_index: "" });
    // a's last emitted step is now "none", so step 2 is new for a but not for b.
    expect(manager.finalizeStep(2n)).toBe(1);
    expect(manager.packets.peek().at(-1)?.systemHealth?.indicators).toMatchObject({ seed_id: "a", step_index: "2" });
    // Same step with queued events still emits.
    manager.recordIsolationViolation("b");
    expect(manager.finalizeStep(2n)).toBe(1);
  });

  it("an immediate flush does not count as the step's heartbeat", () => {
    const { manager } = makeManager();
    for (let i = 0; i < 3; i += 1) manager.recordIsolationViolation("s");
    expect(manager.packets.size).toBe(1);
    expect(manager.seedView("s")?.lastStepEmitted).toBeUndefined();
    expect(manager.finalizeStep(4n)).toBe(1);
    expect(manager.finalizeStep(4n)).toBe(0);
  });

  it("ephemeral seeds are counted, emit once at the periodic flush and are then removed", () => {
    const { manager } = makeManager();
    manager.recordIsolationViolation("eph");
    expect(manager.seedIds()).toEqual([]);
    expect(manager.contextCount).toBe(1);
    manager.updateEpoch(10);
    expect(manager.finalizeStep(3n)).toBe(2);
    const [seedPacket, globalPacket] = manager.packets.peek();
    expect(seedPacket?.packetId).toBe("kasmina-seed-eph-0");
    expect(metricValue(seedPacket, "kasmina.seeds.active")).toBe(1);
    expect(globalPacket?.packetId).toBe("kasmina-global-1");
    expect(manager.hasSeed("eph")).toBe(false);
    expect(manager.contextCount).toBe(0);
    // The global packet built after the removal counts what is left.
    expect(globalPacket?.systemHealth?.indicators.get("seeds")).toBe("0");
    expect(manager.finalizeStep(4n)).toBe(0);
  });
});

describe("seed queue bounding through handleCommand (spec §10.2, decision 1)", () => {
  it("many commands on one seed without a flush keep 64 entries with an exact head marker", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    const germ = manager.handleCommand(seedCommand(clock, "q", GERMINATE));
    const first = germ.events.length; // 8
    expect(first).toBe(8);
    const N = 100;
    for (let i = 0; i < N; i += 1) manager.handleCommand(seedCommand(clock, "q", SeedOperation.SEED_OP_START_TRAINING, `BP-${i}`));
    const ctx = manager.seedView("q");
    expect(ctx?.queue.length).toBe(64);
    const queued = ctx?.queue.toArray() ?? [];
    expect(queued[0]?.description).toBe("seed_queue_dropped");
    expect(queued[0]?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_WARNING);
    expect(queued[0]?.attributes).toEqual({ seed_id: "q", dropped: String(first + N - 63) });
    expect(queued.slice(1).map((e) => e.attributes.get("blueprint_id"))).toEqual(Array.from({ length: 63 }, (_, i) => `BP-${N - 63 + i}`));
    expect(ctx?.pendingPriority).toBe(MessagePriority.MESSAGE_PRIORITY_HIGH);

    // A later overflow before any flush hands the old marker's count to the new one.
    for (let i = 0; i < 10; i += 1) manager.handleCommand(seedCommand(clock, "q", SeedOperation.SEED_OP_START_TRAINING, `X-${i}`));
    expect(ctx?.queue.length).toBe(64);
    expect(ctx?.queue.toArray()[0]?.attributes.get("dropped")).toBe(String(first + N + 10 - 63));

    manager.finalizeStep(1n);
    const [packet] = manager.packets.peek();
    expect(packet?.events).toHaveLength(65); // 64 queued + seed_stage
    expect(names(packet?.events ?? []).filter((n) => n === "seed_queue_dropped")).toHaveLength(1);
    expect(packet?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_HIGH");
    expect(manager.seedView("q")?.queue.length).toBe(0);
  });
});

describe("GC counts end to end (KAS-H1-001, spec §11.3)", () => {
  it("germinated kernels that expire are reported by the next memory_gc, despite handleCommand's cleanup", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    const k = 3;
    for (let i = 0; i < k; i += 1) manager.handleCommand(seedCommand(clock, `s${i}`, GERMINATE));
    expect(manager.memory.kernelCache.size).toBe(k);
    manager.finalizeStep(1n); // k seed packets into the telemetry cache
    expect(manager.memory.telemetryCache.size).toBe(k);
    clock.advance(301);
    manager.handleCommand(optimizer(clock)); // its cleanup purges everything first
    expect(manager.memory.kernelCache.size).toBe(0);
    expect(manager.memory.telemetryCache.size).toBe(0);

    const report = manager.updateEpoch(10);
    expect(report).toEqual({ ran: true, skippedReason: "", kernelCacheExpired: k, telemetryCacheExpired: k, gcCounter: 1, gcEpoch: 10 });
    manager.finalizeStep(2n);
    const gc = find(allEvents(manager.packets.peek()), "memory_gc");
    expect(gc).toHaveLength(1);
    expect(gc[0]?.attributes).toEqual({ kernel_cache_expired: String(k), telemetry_cache_expired: String(k), python_gc_collected: "0", gc_counter: "1", gc_epoch: "10" });

    // Counts are reset once reported.
    expect(manager.updateEpoch(20)).toMatchObject({ ran: true, kernelCacheExpired: 0, telemetryCacheExpired: 0, gcCounter: 2, gcEpoch: 20 });
  });

  it("entries put directly into the kernel cache are counted, lazy expiry included", () => {
    const { manager, clock } = makeManager();
    for (let i = 0; i < 5; i += 1) manager.memory.kernelCache.set(`k${i}`, { i });
    clock.advance(300.5);
    expect(manager.memory.kernelCache.get("k0")).toBeUndefined(); // lazy expiry
    manager.handleCommand(optimizer(clock));
    manager.updateEpoch(9);
    expect(manager.memory.kernelCache.size).toBe(0);
    const report = manager.updateEpoch(10);
    expect(report.kernelCacheExpired).toBe(5);
    manager.finalizeStep(undefined);
    const [gc] = find(allEvents(manager.packets.peek()), "memory_gc");
    expect(gc?.attributes.get("kernel_cache_expired")).toBe("5");
    expect(Object.values(gc?.attributes ?? {}).every((v) => /^\d+$/.test(v))).toBe(true);
  });

  it("skipped GC runs report their reason and queue nothing", () => {
    const { manager } = makeManager({ gcFrequency: 0 });
    expect(manager.updateEpoch(50)).toMatchObject({ ran: false, skippedReason: "disabled" });
    expect(manager.finalizeStep(undefined)).toBe(0);
  });
});
