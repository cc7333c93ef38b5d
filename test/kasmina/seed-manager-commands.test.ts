// SeedManager command handling (spec §5, §6 outcome, §9.6 events): one test per CommandType and
// per SeedOperation, pause / resume, Tamiyo annotations and rejected commands.
import { describe, expect, it } from "vitest";
import { IDENTITY_KERNEL } from "../../src/kasmina/kernel-runtime.js";
import {
  CircuitBreakerState,
  CommandType,
  SeedLifecycleGate as Gate,
  SeedLifecycleStage as Stage,
  SeedOperation,
  TelemetryLevel,
  seedOperationToJSON,
} from "../../src/leyline.js";
import { find, makeManager, names, RecordingIsolation, seedCommand, signed } from "./manager-support.js";

const HOST = [{ key: "host.w", shape: [2], trainable: true, elementBytes: 4 }];
const { INFO, WARNING, ERROR, CRITICAL } = {
  INFO: TelemetryLevel.TELEMETRY_LEVEL_INFO,
  WARNING: TelemetryLevel.TELEMETRY_LEVEL_WARNING,
  ERROR: TelemetryLevel.TELEMETRY_LEVEL_ERROR,
  CRITICAL: TelemetryLevel.TELEMETRY_LEVEL_CRITICAL,
};

const FakeIsolation = class extends RecordingIsolation {
  constructor() {
    super({ hostNorm: 3, seedNorm: 4, dotProduct: 0 });
  }
};

describe("dispatch by CommandType", () => {
  it("COMMAND_SEED without a seed_operation payload is unsupported_command", () => {
    const { manager, clock } = makeManager();
    const out = manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_SEED, targetSeedId: "s1" }));
    expect(out.accepted).toBe(true);
    expect(out.events.map((e) => [e.description, e.level, e.attributes])).toEqual([["unsupported_command", WARNING, { command_type: "COMMAND_SEED" }]]);
    expect(manager.hasSeed("s1")).toBe(false);
  });

  it.each([
    ["COMMAND_UNKNOWN", CommandType.COMMAND_UNKNOWN],
    ["COMMAND_ROLLBACK", CommandType.COMMAND_ROLLBACK],
    ["COMMAND_STRUCTURAL_PRUNING", CommandType.COMMAND_STRUCTURAL_PRUNING],
    ["COMMAND_CIRCUIT_BREAKER", CommandType.COMMAND_CIRCUIT_BREAKER], // without its payload
  ] as const)("%s is an unsupported_command on the global queue with no state change", (name, type) => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE));
    manager.finalizeStep(1n);
    manager.packets.drain();
    const breaker = manager.kernelBreaker.snapshot();
    const fields =
      type === CommandType.COMMAND_ROLLBACK
        ? { commandType: type, targetSeedId: "s1", payload: { $case: "rollbackPayload" as const, value: { seed_id: "s1" } } }
        : { commandType: type, targetSeedId: "s1" };
    const out = manager.handleCommand(signed(clock, fields));
    expect(out).toMatchObject({ accepted: true, seedId: undefined });
    expect(out.events).toEqual([{ eventId: "", description: "unsupported_command", level: WARNING, attributes: { command_type: name } }]);
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_PROBATIONARY);
    expect(manager.kernelBreaker.snapshot()).toEqual(breaker);
    expect(manager.rollbackPayload("s1")).toBeUndefined();
    manager.finalizeStep(1n); // same step, empty seed queue ⇒ only the global packet
    const packets = manager.packets.drain();
    expect(packets.map((p) => p.packetId)).toEqual([expect.stringMatching(/^kasmina-global-\d+$/)]);
    expect(packets[0]?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_HIGH");
  });

  it("COMMAND_OPTIMIZER emits optimizer_adjust INFO globally (optimizer_id from the payload, else empty)", () => {
    const { manager, clock } = makeManager();
    const a = manager.handleCommand(
      signed(clock, {
        commandType: CommandType.COMMAND_OPTIMIZER,
        payload: { $case: "optimizerAdjustment", value: { optimizerId: "adam-1", hyperparameters: new Map(Object.entries({ lr: 0.1 })) } },
      }),
    );
    const b = manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_OPTIMIZER }));
    expect(a.events.map((e) => [e.description, e.level, e.attributes])).toEqual([["optimizer_adjust", INFO, { command_type: "COMMAND_OPTIMIZER", optimizer_id: "adam-1" }]]);
    expect(b.events[0]?.attributes).toEqual({ command_type: "COMMAND_OPTIMIZER", optimizer_id: "" });
    expect(manager.contextCount).toBe(0);
    manager.finalizeStep(undefined);
    const [packet] = manager.packets.peek();
    expect(names(packet?.events ?? [])).toEqual(["optimizer_adjust", "optimizer_adjust"]);
    expect(packet?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_NORMAL");
  });

  it("COMMAND_CIRCUIT_BREAKER forces the kernel breaker (seed_id 'kasmina', action forced, reason rationale or 'manual')", () => {
    const { manager, clock } = makeManager();
    const open = manager.handleCommand(
      signed(clock, {
        commandType: CommandType.COMMAND_CIRCUIT_BREAKER,
        payload: { $case: "circuitBreaker", value: { desiredState: CircuitBreakerState.CIRCUIT_STATE_OPEN, rationale: "maintenance" } },
      }),
    );
    expect(open.events.map((e) => [e.description, e.level, e.attributes])).toEqual([
      ["breaker_event", WARNING, { seed_id: "kasmina", breaker_state: "CIRCUIT_STATE_OPEN", action: "forced", reason: "maintenance" }],
    ]);
    expect(manager.kernelBreaker.snapshot()).toMatchObject({ state: CircuitBreakerState.CIRCUIT_STATE_OPEN, failureCount: 3 });
    // Forcing OPEN denies the next germinate.
    const germ = manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE));
    expect(find(germ.events, "breaker_event")[0]?.attributes.get("action")).toBe("denied");

    const closed = manager.handleCommand(
      signed(clock, {
        commandType: CommandType.COMMAND_CIRCUIT_BREAKER,
        payload: { $case: "circuitBreaker", value: { desiredState: CircuitBreakerState.CIRCUIT_STATE_CLOSED, rationale: "" } },
      }),
    );
    expect(closed.events[0]?.attributes).toEqual({ seed_id: "kasmina", breaker_state: "CIRCUIT_STATE_CLOSED", action: "forced", reason: "manual" });
    expect(manager.kernelBreaker.snapshot()).toMatchObject({ state: CircuitBreakerState.CIRCUIT_STATE_CLOSED, failureCount: 0 });
    // Global queue, and the isolation breaker is untouched.
    expect(manager.isolationBreaker.snapshot().state).toBe(CircuitBreakerState.CIRCUIT_STATE_CLOSED);
  });

  it("COMMAND_CIRCUIT_BREAKER with desired state UNKNOWN is breaker_command_invalid and changes nothing", () => {
    const { manager, clock } = makeManager();
    const before = manager.kernelBreaker.snapshot();
    const out = manager.handleCommand(
      signed(clock, {
        commandType: CommandType.COMMAND_CIRCUIT_BREAKER,
        payload: { $case: "circuitBreaker", value: { desiredState: CircuitBreakerState.CIRCUIT_STATE_UNKNOWN, rationale: "x" } },
      }),
    );
    expect(out.accepted).toBe(true);
    expect(out.events).toEqual([
      { eventId: "", description: "breaker_command_invalid", level: WARNING, attributes: { desired_state: "0", error: "Unsupported circuit breaker state: 0" } },
    ]);
    expect(manager.kernelBreaker.snapshot()).toEqual(before);
  });

  it("COMMAND_EMERGENCY without include_teacher: CRITICAL emergency_cleanup with exact counts; teacher kept", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    manager.registerTeacher([{ key: "t.w", shape: [4], trainable: true, elementBytes: 4 }], []);
    manager.handleCommand(seedCommand(clock, "a", SeedOperation.SEED_OP_GERMINATE));
    manager.handleCommand(seedCommand(clock, "b", SeedOperation.SEED_OP_GERMINATE));
    manager.finalizeStep(1n); // 2 seed packets + 1 global packet (teacher_registered)
    expect(manager.memory.kernelCache.size).toBe(3);
    expect(manager.memory.telemetryCache.size).toBe(3);

    const out = manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_EMERGENCY, annotations: new Map(Object.entries({ include_teacher: "no" })) }));
    expect(out.events.map((e) => [e.description, e.level, e.attributes])).toEqual([
      ["emergency_cleanup", CRITICAL, { include_teacher: "false", kernel_cache_cleared: "2", telemetry_cache_cleared: "3", python_gc_collected: "0" }],
    ]);
    expect(manager.memory.kernelCache.size).toBe(1);
    expect(manager.memory.teacher()).toBeDefined();
    // The emergency packet itself went into the (just cleared) telemetry cache.
    expect(manager.memory.telemetryCache.size).toBe(1);
  });

  it("COMMAND_EMERGENCY with include_teacher=true removes the teacher too", () => {
    const { manager, clock } = makeManager();
    manager.registerTeacher([{ key: "t.w", shape: [4], trainable: true, elementBytes: 4 }], []);
    const out = manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_EMERGENCY, annotations: new Map(Object.entries({ include_teacher: "True" })) }));
    expect(out.events[0]?.attributes).toEqual({ include_teacher: "true", kernel_cache_cleared: "1", telemetry_cache_cleared: "0", python_gc_collected: "0" });
    expect(manager.memory.teacher()).toBeUndefined();
    // The global packet flushed at once carries the teacher_registered event queued before it.
    const [packet] = manager.packets.peek();
    expect(names(packet?.events ?? [])).toEqual(["teacher_registered", "emergency_cleanup"]);
  });
});

describe("seed operations", () => {
  const NO_STATE_OPS = [
    SeedOperation.SEED_OP_UNKNOWN,
    SeedOperation.SEED_OP_START_TRAINING,
    SeedOperation.SEED_OP_START_GRAFTING,
    SeedOperation.SEED_OP_STABILIZE,
    SeedOperation.SEED_OP_EVALUATE,
    SeedOperation.SEED_OP_FINE_TUNE,
    SeedOperation.SEED_OP_FOSSILIZE,
  ];

  it.each(NO_STATE_OPS.map((op) => [seedOperationToJSON(op), op] as const))("immediate: %s only emits seed_operation and changes nothing", (name, op) => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE));
    const stage = manager.stageOf("s1");
    const alpha = manager.seedView("s1")?.alpha;
    const calls = runtime.calls.length;
    const out = manager.handleCommand(seedCommand(clock, "s1", op, "BP001"));
    expect(out).toMatchObject({ accepted: true, seedId: "s1" });
    expect(out.events).toEqual([
      { eventId: "", description: "seed_operation", level: INFO, attributes: { command_type: "COMMAND_SEED", operation: name, seed_id: "s1", blueprint_id: "BP001" } },
    ]);
    expect(manager.stageOf("s1")).toBe(stage);
    expect(manager.seedView("s1")?.alpha).toBe(alpha);
    expect(runtime.calls.length).toBe(calls);
  });

  it.each([SeedOperation.SEED_OP_UNKNOWN, SeedOperation.SEED_OP_FINE_TUNE].map((op) => [seedOperationToJSON(op), op] as const))("driven: %s has no stage of its own and only emits seed_operation", (_name, op) => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE));
    const out = manager.handleCommand(seedCommand(clock, "s1", op));
    expect(names(out.events)).toEqual(["seed_operation"]);
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_TRAINING);
  });

  it.each([SeedOperation.SEED_OP_CULL, SeedOperation.SEED_OP_CANCEL].map((op) => [seedOperationToJSON(op), op] as const))("%s retires a seed under both pacings", (_name, op) => {
    for (const pacing of ["immediate", "driven"] as const) {
      const { manager, clock, runtime } = makeManager({ pacing });
      manager.registerHost(HOST);
      manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "BP002"));
      manager.finalizeStep(1n);
      manager.packets.drain();
      const out = manager.handleCommand(seedCommand(clock, "s1", op));
      expect(names(out.events)).toEqual(["seed_operation", "gate_event", "rollback_ready"]);
      expect(manager.hasSeed("s1")).toBe(false);
      expect(manager.memory.kernelCache.size).toBe(0);
      expect(manager.validateParameters("s1", ["s1/w"])).toBe(false);
      const [packet] = manager.packets.drain();
      expect(packet?.packetId).toMatch(/^kasmina-seed-s1-\d+$/);
      expect(packet?.systemHealth?.indicators).toEqual({ seed_id: "s1", priority: "MESSAGE_PRIORITY_NORMAL", step_index: "" });
      // Re-germinating later starts from a fresh DORMANT context.
      manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "BP002"));
      expect(runtime.calls).toEqual(["BP002", "BP002"]);
      expect(manager.stageOf("s1")).toBe(pacing === "driven" ? Stage.SEED_STAGE_TRAINING : Stage.SEED_STAGE_PROBATIONARY);
    }
  });

  it("CULL of an unknown seed flushes its seed_operation event at once and leaves no context behind", () => {
    const { manager, clock } = makeManager();
    const out = manager.handleCommand(seedCommand(clock, "ghost", SeedOperation.SEED_OP_CULL));
    expect(names(out.events)).toEqual(["seed_operation"]);
    expect(manager.hasSeed("ghost")).toBe(false);
    expect(manager.rollbackPayload("ghost")).toBeUndefined();
    const packets = manager.packets.peek();
    expect(packets.map((p) => p.packetId)).toEqual(["kasmina-seed-ghost-0"]);
    expect(names(packets[0]?.events ?? [])).toEqual(["seed_operation", "seed_stage"]);
  });

  it("an empty seed id makes germinate / cull no-ops and puts seed_operation on the global queue", () => {
    for (const op of [SeedOperation.SEED_OP_GERMINATE, SeedOperation.SEED_OP_CULL, SeedOperation.SEED_OP_START_GRAFTING]) {
      for (const pacing of ["immediate", "driven"] as const) {
        const { manager, clock, runtime } = makeManager({ pacing });
        const out = manager.handleCommand(seedCommand(clock, "", op));
        expect(out).toMatchObject({ accepted: true, seedId: undefined });
        expect(names(out.events)).toEqual(["seed_operation"]);
        expect(manager.contextCount).toBe(0);
        expect(runtime.calls).toEqual([]);
        manager.finalizeStep(undefined);
        expect(manager.packets.peek().map((p) => p.packetId)).toEqual(["kasmina-global-0"]);
      }
    }
  });

  it("GERMINATE with an empty blueprint fails G0 and leaves the seed DORMANT", () => {
    const { manager, clock, runtime } = makeManager();
    const out = manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "  "));
    expect(names(out.events)).toEqual(["seed_operation", "gate_event", "gate_failure", "rollback_ready"]);
    expect(find(out.events, "gate_event")[0]?.attributes).toEqual({ seed_id: "s1", gate: "SEED_GATE_G0_SANITY", passed: "false", blueprint_id: "", reason: "missing blueprint id" });
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_DORMANT);
    expect(runtime.calls).toEqual([]);
    expect(manager.rollbackPayload("s1")).toEqual({ seed_id: "s1", stage: "SEED_STAGE_DORMANT", reason: "missing blueprint id" });
  });

  it("GERMINATE with a NaN parameter fails G0 naming the parameter", () => {
    const { manager, clock } = makeManager();
    const out = manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "BP001", {}, { lr: 0.1, bad: Number.NaN }));
    expect(find(out.events, "gate_failure")[0]?.attributes).toEqual({ seed_id: "s1", gate: "SEED_GATE_G0_SANITY", reason: "parameter bad invalid" });
    expect(find(out.events, "gate_event")[0]?.attributes.get("parameter")).toBe("bad");
  });
});

describe("pause and resume (COMMAND_PAUSE)", () => {
  const pause = (clock: Parameters<typeof signed>[0], seedId: string, annotations: Record<string, string> = {}) =>
    signed(clock, { commandType: CommandType.COMMAND_PAUSE, targetSeedId: seedId, annotations: new Map(Object.entries(annotations)) });

  it("pause swaps in the identity kernel, detaches, disables and resets the session, keeps the stage", () => {
    const isolation = new FakeIsolation();
    const { manager, clock } = makeManager({ isolation, pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE));
    const session = isolation.opened.at(-1)?.session;
    expect(session?.collecting).toBe(true);
    session?.log.splice(0);

    const out = manager.handleCommand(pause(clock, "s1"));
    expect(out.events.map((e) => [e.description, e.level, e.attributes])).toEqual([["seed_paused", WARNING, { seed_id: "s1" }]]);
    const ctx = manager.seedView("s1");
    expect(ctx?.kernel).toBe(IDENTITY_KERNEL);
    expect(ctx?.kernelAttached).toBe(false);
    expect(ctx?.metadata.get("paused")).toBe("true");
    expect(ctx?.metadata.get("performance_status")).toBe("paused");
    expect(ctx?.stage).toBe(Stage.SEED_STAGE_TRAINING);
    expect(session?.log).toEqual(["disable", "reset"]);
  });

  it("pause / resume of an unknown seed emits nothing", () => {
    const { manager, clock } = makeManager();
    expect(manager.handleCommand(pause(clock, "nope")).events).toEqual([]);
    expect(manager.handleCommand(pause(clock, "nope", { resume: "true" })).events).toEqual([]);
    expect(manager.contextCount).toBe(0);
  });

  it("resume from the GPU cache: cache hit, no fetch, G1 re-evaluated but not stored", () => {
    const isolation = new FakeIsolation();
    const { manager, clock, runtime } = makeManager({ isolation, pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "BP002"));
    manager.handleCommand(pause(clock, "s1"));
    const storedG1 = manager.seedView("s1")?.lastGateResults.get(Gate.SEED_GATE_G1_GRADIENT_HEALTH);
    expect(storedG1).toBeDefined();
    const iso = manager.isolationBreaker.snapshot();

    const out = manager.handleCommand(pause(clock, "s1", { resume: "TRUE" }));
    expect(runtime.calls).toEqual(["BP002"]);
    expect(out.events.map((e) => [e.description, e.level, e.attributes])).toEqual([
      ["seed_resumed", INFO, { seed_id: "s1", blueprint_id: "BP002", cache: "hit" }],
      ["gate_event", INFO, { seed_id: "s1", gate: "SEED_GATE_G1_GRADIENT_HEALTH", passed: "true", kernel_attached: "true" }],
      ["isolation_breaker", WARNING, { component: "isolation", breaker_state: "CIRCUIT_STATE_CLOSED", action: "count", reason: "success", seed_id: "s1" }],
    ]);
    const ctx = manager.seedView("s1");
    expect(ctx?.lastGateResults.get(Gate.SEED_GATE_G1_GRADIENT_HEALTH)).toBe(storedG1);
    expect(ctx?.kernelAttached).toBe(true);
    expect(ctx?.kernel?.blueprintId).toBe("BP002");
    expect(ctx?.metadata.get("paused")).toBe("false");
    expect(ctx?.metadata.get("performance_status")).toBe("nominal");
    expect(iso.state).toBe(CircuitBreakerState.CIRCUIT_STATE_CLOSED);
    // A new session replaced the old one (closed first, decision 13) and collects in TRAINING.
    expect(isolation.opened).toHaveLength(2);
    expect(isolation.opened[0]?.session.log).toContain("close");
    expect(isolation.opened[1]?.session.collecting).toBe(true);
    expect(manager.isolationSession("s1")).toBe(isolation.opened[1]?.session);
  });

  it("resume without a GPU cache fetches again (cache miss), records the runtime latency and caches nothing", () => {
    const { manager, clock, runtime } = makeManager({ gpuCacheCapacity: 0 });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "BP002"));
    runtime.latencies["BP002"] = 7;
    manager.handleCommand(pause(clock, "s1"));
    const out = manager.handleCommand(pause(clock, "s1", { resume: "true" }));
    expect(runtime.calls).toEqual(["BP002", "BP002"]);
    expect(find(out.events, "seed_resumed")[0]?.attributes).toEqual({ seed_id: "s1", blueprint_id: "BP002", cache: "miss" });
    expect(manager.seedView("s1")?.lastKernelLatencyMs).toBe(7);
    expect(manager.gpuCacheStats()).toBeUndefined();
    // Outside TRAINING/BLENDING (PROBATIONARY here) nothing collects.
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_PROBATIONARY);
  });

  it("resume whose fetch fails attaches the fallback and never caches it under the blueprint", () => {
    const { manager, clock, runtime } = makeManager({ gpuCacheCapacity: 4 });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "BP002"));
    manager.gpuCache?.delete("BP002");
    manager.handleCommand(pause(clock, "s1"));
    runtime.failing.add("BP002");
    const out = manager.handleCommand(pause(clock, "s1", { resume: "true" }));
    expect(runtime.calls).toEqual(["BP002", "BP002", "BP001"]);
    expect(find(out.events, "seed_resumed")[0]?.attributes.get("cache")).toBe("miss");
    expect(manager.seedView("s1")?.usedFallback).toBe(true);
    expect(manager.seedView("s1")?.kernel?.blueprintId).toBe("BP001");
    expect(manager.gpuCache?.keys()).toEqual([]);
  });

  it("resume after a fallback germinate caches the kernel it now fetches successfully", () => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    runtime.failing.add("BP002");
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "BP002"));
    expect(manager.seedView("s1")?.usedFallback).toBe(true);
    expect(manager.gpuCache?.keys()).toEqual([]);
    runtime.failing.delete("BP002");
    manager.handleCommand(pause(clock, "s1"));
    manager.handleCommand(pause(clock, "s1", { resume: "true" }));
    expect(manager.seedView("s1")?.kernel?.blueprintId).toBe("BP002");
    expect(manager.gpuCache?.keys()).toEqual(["BP002"]);
  });

  it("resume of a seed with violations fails the re-evaluated G1 and runs gate-failure handling", () => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE));
    manager.handleCommand(pause(clock, "s1"));
    manager.recordIsolationViolation("s1");
    const out = manager.handleCommand(pause(clock, "s1", { resume: "true" }));
    expect(names(out.events)).toEqual(["seed_resumed", "gate_failure", "rollback_ready"]);
    expect(find(out.events, "gate_failure")[0]?.attributes).toEqual({ seed_id: "s1", gate: "SEED_GATE_G1_GRADIENT_HEALTH", reason: "gradient isolation violations present" });
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_EMBARGOED);
    expect(manager.seedView("s1")?.kernelAttached).toBe(false);
  });
});

describe("Tamiyo annotations (spec §5.8) and rejected commands (§5.9)", () => {
  it("copies present keys into a tamiyo_annotations event and seed metadata", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    const annotations = { feature_coverage: "0.9", risk_reason: "drift", blueprint_risk: "0.4", blueprint_tier: "2", blueprint_stage: "exp", other: "ignored" };
    const out = manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "BP001", annotations));
    const [tamiyo] = find(out.events, "tamiyo_annotations");
    expect(tamiyo?.level).toBe(INFO);
    expect(tamiyo?.attributes).toEqual({ seed_id: "s1", feature_coverage: "0.9", risk_reason: "drift", blueprint_risk: "0.4", blueprint_tier: "2", blueprint_stage: "exp" });
    expect(names(out.events).at(-1)).toBe("tamiyo_annotations");
    expect(find(out.events, "degraded_inputs")).toEqual([]);
    const md = manager.seedView("s1")?.metadata;
    expect(md?.get("tamiyo_feature_coverage")).toBe("0.9");
    expect(md?.get("tamiyo_risk_reason")).toBe("drift");
    expect(md?.get("tamiyo_blueprint_risk")).toBe("0.4");
    expect(md?.get("tamiyo_blueprint_tier")).toBe("2");
    expect(md?.get("tamiyo_blueprint_stage")).toBe("exp");
    expect(md?.has("tamiyo_conservative_fallback")).toBe(false);
    expect(md?.has("tamiyo_other")).toBe(false);
  });

  it("coverage 0.25 ⇒ degraded_inputs WARNING, conservative fallback, no immediate flush", () => {
    const { manager, clock } = makeManager();
    const out = manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_PAUSE, targetSeedId: "s1", annotations: new Map(Object.entries({ feature_coverage: "0.25" })) }));
    expect(out.events.map((e) => [e.description, e.level, e.attributes])).toEqual([
      ["tamiyo_annotations", INFO, { seed_id: "s1", feature_coverage: "0.25" }],
      ["degraded_inputs", WARNING, { seed_id: "s1", feature_coverage: "0.25", coverage_avg: "0.250" }],
    ]);
    expect(manager.seedView("s1")?.metadata.get("tamiyo_conservative_fallback")).toBe("true");
    expect(manager.isEphemeral("s1")).toBe(true);
    expect(manager.packets.size).toBe(0);
  });

  it("coverage 0.05 ⇒ degraded_inputs CRITICAL and an immediate seed flush", () => {
    const { manager, clock } = makeManager();
    const out = manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_PAUSE, targetSeedId: "s1", annotations: new Map(Object.entries({ feature_coverage: " 0.05 " })) }));
    expect(find(out.events, "degraded_inputs").map((e) => [e.level, e.attributes.get("coverage_avg")])).toEqual([[CRITICAL, "0.050"]]);
    const packets = manager.packets.peek();
    expect(packets.map((p) => p.packetId)).toEqual(["kasmina-seed-s1-0"]);
    expect(packets[0]?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_CRITICAL");
    // Quirk kept (spec §2.4): an immediate flush without removal makes the ephemeral seed permanent.
    expect(manager.isEphemeral("s1")).toBe(false);
    expect(manager.seedIds()).toEqual(["s1"]);
  });

  it.each(["nan", "NaN", "abc"])("coverage %s never triggers degraded_inputs (nor conservative fallback)", (coverage) => {
    const { manager, clock } = makeManager();
    const out = manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_PAUSE, targetSeedId: "s1", annotations: new Map(Object.entries({ feature_coverage: coverage })) }));
    expect(names(out.events)).toEqual(["tamiyo_annotations"]);
    expect(manager.seedView("s1")?.metadata.has("tamiyo_conservative_fallback")).toBe(false);
    expect(manager.seedView("s1")?.metadata.get("tamiyo_feature_coverage")).toBe(coverage);
  });

  it("annotations on a global command carry no seed_id and write no metadata", () => {
    const { manager, clock } = makeManager();
    const out = manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_OPTIMIZER, annotations: new Map(Object.entries({ feature_coverage: "0.2" })) }));
    expect(out.events.map((e) => [e.description, e.attributes])).toEqual([
      ["optimizer_adjust", { command_type: "COMMAND_OPTIMIZER", optimizer_id: "" }],
      ["tamiyo_annotations", { feature_coverage: "0.2" }],
      ["degraded_inputs", { feature_coverage: "0.2", coverage_avg: "0.200" }],
    ]);
    expect(manager.contextCount).toBe(0);
  });

  it("rejected command with annotations: command_rejected ERROR plus the resilience events, no metadata", () => {
    const { manager, clock } = makeManager();
    const cmd = seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "BP001", { feature_coverage: "0.05", risk_reason: "r" });
    cmd.annotations.set("signature", "AAAA");
    const out = manager.handleCommand(cmd);
    expect(out).toMatchObject({ accepted: false, reason: "invalid_signature" });
    expect(out.events.map((e) => [e.description, e.level, e.attributes])).toEqual([
      ["command_rejected", ERROR, { reason: "invalid_signature", command_id: cmd.commandId }],
      ["tamiyo_annotations", INFO, { feature_coverage: "0.05", risk_reason: "r" }],
      ["degraded_inputs", CRITICAL, { feature_coverage: "0.05", risk_reason: "r", coverage_avg: "0.050" }],
    ]);
    expect(manager.contextCount).toBe(0);
    // CRITICAL on the global queue flushes at once (decision 15).
    expect(manager.packets.peek().map((p) => p.packetId)).toEqual(["kasmina-global-0"]);
  });

  it("no verifier: every command is refused with verifier_unavailable (no command_id)", () => {
    const { manager, clock } = makeManager({ verifier: undefined });
    expect(manager.hasVerifier).toBe(false);
    const out = manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE, "BP001", { risk_reason: "x" }));
    expect(out).toMatchObject({ accepted: false, reason: "verifier_unavailable" });
    expect(out.events.map((e) => [e.description, e.attributes])).toEqual([
      ["command_rejected", { reason: "verifier_unavailable" }],
      ["tamiyo_annotations", { risk_reason: "x" }],
    ]);
    expect(manager.hasSeed("s1")).toBe(false);
  });

  it("a replayed command id is rejected as nonce_replayed and changes nothing", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    const cmd = seedCommand(clock, "s1", SeedOperation.SEED_OP_GERMINATE);
    expect(manager.handleCommand(cmd).accepted).toBe(true);
    manager.handleCommand(seedCommand(clock, "s1", SeedOperation.SEED_OP_CULL));
    const again = manager.handleCommand(cmd);
    expect(again).toMatchObject({ accepted: false, reason: "nonce_replayed" });
    expect(manager.hasSeed("s1")).toBe(false);
  });
});
