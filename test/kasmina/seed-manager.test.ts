// SeedManager, domain level: the spec's Appendix B vectors (immediate pacing) and the DESIGN §3
// decisions that change the original's behaviour. Other behaviour lives in the sibling files
// seed-manager-commands / -lifecycle / -telemetry.
import { describe, expect, it } from "vitest";
import {
  CircuitBreakerState,
  CommandType,
  HealthStatus,
  SeedLifecycleGate as Gate,
  SeedLifecycleStage as Stage,
  SeedOperation,
  TelemetryLevel,
} from "../../src/leyline.js";
import { allEvents, find, makeManager, names, seedCommand, signed } from "./manager-support.js";

const HOST = [{ key: "host.w", shape: [2], trainable: true, elementBytes: 4 }];
const GERMINATE = SeedOperation.SEED_OP_GERMINATE;
const CULL = SeedOperation.SEED_OP_CULL;

describe("Appendix B vectors (pacing immediate)", () => {
  it("germinate with a host and 1 ms latency runs to PROBATIONARY with alpha 1.0", () => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    const out = manager.handleCommand(seedCommand(clock, "s1", GERMINATE, "BP001"));

    expect(out.accepted).toBe(true);
    expect(manager.seedView("s1")?.stage).toBe(Stage.SEED_STAGE_PROBATIONARY);
    expect(manager.seedView("s1")?.alpha).toBe(1.0);
    expect(runtime.calls).toEqual(["BP001"]);
    expect(names(out.events)).toEqual([
      "seed_operation",
      "gate_event", // G0
      "breaker_event",
      "gate_event", // G1
      "isolation_breaker",
      "gate_event", // G2
      "gate_event", // G3
      "gate_event", // G4
    ]);
    const gates = find(out.events, "gate_event");
    expect(gates.map((e) => e.attributes.get("gate"))).toEqual([
      "SEED_GATE_G0_SANITY",
      "SEED_GATE_G1_GRADIENT_HEALTH",
      "SEED_GATE_G2_STABILITY",
      "SEED_GATE_G3_INTERFACE",
      "SEED_GATE_G4_SYSTEM_IMPACT",
    ]);
    expect(gates.every((e) => e.attributes.get("passed") === "true" && e.level === TelemetryLevel.TELEMETRY_LEVEL_INFO)).toBe(true);
    const [breaker] = find(out.events, "breaker_event");
    expect(breaker?.attributes).toEqual({ seed_id: "s1", breaker_state: "CIRCUIT_STATE_CLOSED", action: "count", reason: "success" });
    expect(breaker?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_INFO);
    const [iso] = find(out.events, "isolation_breaker");
    expect(iso?.attributes).toEqual({ component: "isolation", breaker_state: "CIRCUIT_STATE_CLOSED", action: "count", reason: "success", seed_id: "s1" });
    expect(iso?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_WARNING);
    expect(find(out.events, "seed_operation")[0]?.attributes).toEqual({
      command_type: "COMMAND_SEED",
      operation: "SEED_OP_GERMINATE",
      seed_id: "s1",
      blueprint_id: "BP001",
    });
    // Every gate of the run is remembered (standard gate path).
    expect([...(manager.seedView("s1")?.lastGateResults.keys() ?? [])]).toEqual([
      Gate.SEED_GATE_G0_SANITY,
      Gate.SEED_GATE_G1_GRADIENT_HEALTH,
      Gate.SEED_GATE_G2_STABILITY,
      Gate.SEED_GATE_G3_INTERFACE,
      Gate.SEED_GATE_G4_SYSTEM_IMPACT,
    ]);
  });

  it("germinate with 25 ms latency fetches the blueprint then BP001 and fails G2 into EMBARGOED", () => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    runtime.latencies["BP002"] = 25;
    const out = manager.handleCommand(seedCommand(clock, "s1", GERMINATE, "BP002"));

    expect(runtime.calls).toEqual(["BP002", "BP001"]);
    expect(manager.seedView("s1")?.stage).toBe(Stage.SEED_STAGE_EMBARGOED);
    const g2 = find(out.events, "gate_event").find((e) => e.attributes.get("gate") === "SEED_GATE_G2_STABILITY");
    expect(g2?.attributes).toMatchObject({ passed: "false", reason: "latency budget exceeded", latency_ms: "25.00", budget_ms: "10.00" });
    expect(g2?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_WARNING);
    const [failure] = find(out.events, "gate_failure");
    expect(failure?.attributes).toEqual({ seed_id: "s1", gate: "SEED_GATE_G2_STABILITY", reason: "latency budget exceeded" });
    expect(failure?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_WARNING);
    const [rollback] = find(out.events, "rollback_ready");
    expect(rollback?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_WARNING);
    expect(rollback?.attributes.get("stage")).toBe("SEED_STAGE_EMBARGOED");
    expect(rollback?.attributes.get("latency_ms")).toMatch(/^\d+\.\d{3}$/);
    // The slow fetch is a kernel-breaker failure (count 1).
    expect(find(out.events, "breaker_event")[0]?.attributes).toMatchObject({ action: "count", reason: "latency_budget_exceeded", breaker_state: "CIRCUIT_STATE_CLOSED" });
    expect(manager.kernelBreaker.snapshot().failureCount).toBe(1);
    expect(manager.rollbackPayload("s1")).toEqual({ seed_id: "s1", stage: "SEED_STAGE_EMBARGOED", reason: "latency budget exceeded" });
    const ctx = manager.seedView("s1");
    expect(ctx?.kernelAttached).toBe(false);
    expect(ctx?.isolationViolations).toBe(1);
    expect(ctx?.metadata.get("performance_status")).toBe("violations");
    expect(ctx?.metadata.get("last_gate_failure")).toBe("latency budget exceeded");
    expect(ctx?.embargoUntil).toBe(clock.monotonic() + 30);
  });

  it("cull after a successful germinate removes the seed and records a 'retired' rollback", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE));
    expect(manager.seedIds()).toEqual(["s1"]);
    const before = manager.packets.size;

    const out = manager.handleCommand(seedCommand(clock, "s1", CULL));

    expect(manager.seedIds()).toEqual([]);
    expect(manager.seedState("s1")).toBeUndefined();
    expect(manager.rollbackPayload("s1")).toEqual({ seed_id: "s1", stage: "SEED_STAGE_DORMANT", reason: "retired" });
    const [rollback] = find(out.events, "rollback_ready");
    expect(rollback?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_INFO);
    expect(rollback?.attributes).toEqual({ seed_id: "s1", stage: "SEED_STAGE_DORMANT" });
    // The G5 gate ran through the standard path.
    expect(find(out.events, "gate_event").map((e) => [e.attributes.get("gate"), e.attributes.get("passed")])).toEqual([["SEED_GATE_G5_RESET", "true"]]);
    // Flushed at once (remove after flush): one seed packet holding both commands' events.
    const packets = manager.packets.peek().slice(before);
    expect(packets.map((p) => p.packetId)).toEqual([`kasmina-seed-s1-${before}`]);
    expect(names(packets[0]?.events ?? [])).toContain("rollback_ready");
    expect(names(packets[0]?.events ?? []).at(-1)).toBe("seed_stage");
    expect(find(packets[0]?.events ?? [], "seed_stage")[0]?.attributes).toEqual({ seed_id: "s1", stage: "SEED_STAGE_DORMANT", alpha: "0.0000" });
  });

  it("three violations on 's': the third is CRITICAL and flushes a CRITICAL packet at once", () => {
    const { manager } = makeManager();
    manager.recordIsolationViolation("s");
    manager.recordIsolationViolation("s");
    expect(manager.packets.size).toBe(0);
    const result = manager.recordIsolationViolation("s");

    expect(result).toEqual({ totalViolations: 3, breakerState: CircuitBreakerState.CIRCUIT_STATE_OPEN });
    const packets = manager.packets.peek();
    expect(packets).toHaveLength(1);
    const packet = packets[0];
    expect(packet?.systemHealth?.indicators).toEqual({ seed_id: "s", priority: "MESSAGE_PRIORITY_CRITICAL", step_index: "" });
    expect(packet?.systemHealth?.status).toBe(HealthStatus.HEALTH_STATUS_UNHEALTHY);
    const violations = find(packet?.events ?? [], "violation_recorded");
    expect(violations.map((e) => [e.level, e.attributes.get("violations")])).toEqual([
      [TelemetryLevel.TELEMETRY_LEVEL_WARNING, "1"],
      [TelemetryLevel.TELEMETRY_LEVEL_WARNING, "2"],
      [TelemetryLevel.TELEMETRY_LEVEL_CRITICAL, "3"],
    ]);
    const breakers = find(packet?.events ?? [], "isolation_breaker");
    expect(breakers.at(-1)?.attributes).toEqual({ component: "isolation", breaker_state: "CIRCUIT_STATE_OPEN", action: "transition", reason: "isolation_violation", seed_id: "s" });
    expect(breakers.at(-1)?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_CRITICAL);
    expect(manager.lastPriority).toBe(4);
  });

  it("updateEpoch(9) queues no memory_gc; updateEpoch(10) puts one in the next global packet", () => {
    const { manager } = makeManager();
    const skipped = manager.updateEpoch(9);
    expect(skipped).toMatchObject({ ran: false, skippedReason: "frequency_not_met" });
    expect(manager.finalizeStep(undefined)).toBe(0);
    expect(manager.packets.size).toBe(0);

    const ran = manager.updateEpoch(10);
    expect(ran).toMatchObject({ ran: true, gcCounter: 1, gcEpoch: 10, kernelCacheExpired: 0, telemetryCacheExpired: 0 });
    expect(manager.finalizeStep(undefined)).toBe(1);
    const [packet] = manager.packets.peek();
    expect(packet?.packetId).toBe("kasmina-global-0");
    const [gc] = find(packet?.events ?? [], "memory_gc");
    expect(gc?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_INFO);
    expect(gc?.attributes).toEqual({ kernel_cache_expired: "0", telemetry_cache_expired: "0", python_gc_collected: "0", gc_counter: "1", gc_epoch: "10" });
  });

  it("an unsigned command is rejected with missing_signature and creates no seed", () => {
    const { manager, clock } = makeManager();
    const cmd = seedCommand(clock, "s1", GERMINATE);
    cmd.annotations.delete("signature");
    const out = manager.handleCommand(cmd);

    expect(out).toMatchObject({ accepted: false, reason: "missing_signature" });
    expect(out.events).toHaveLength(1);
    expect(out.events[0]?.description).toBe("command_rejected");
    expect(out.events[0]?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_ERROR);
    expect(out.events[0]?.attributes).toEqual({ reason: "missing_signature", command_id: cmd.commandId });
    expect(manager.hasSeed("s1")).toBe(false);
    expect(manager.contextCount).toBe(0);
    manager.finalizeStep(undefined);
    expect(manager.packets.peek().map((p) => p.packetId)).toEqual(["kasmina-global-0"]);
  });
});

describe("DESIGN §3 decisions", () => {
  it("4: a fallback kernel is never cached under the requested id (failed fetch, then slow fetch)", () => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    runtime.failing.add("BP009");
    manager.handleCommand(seedCommand(clock, "a", GERMINATE, "BP009"));
    expect(runtime.calls).toEqual(["BP009", "BP001"]);
    expect(manager.seedView("a")?.metadata.get("kernel_cache")).toBe("fallback");
    manager.handleCommand(seedCommand(clock, "b", GERMINATE, "BP009"));
    // The second germinate misses the GPU cache and asks the runtime again.
    expect(runtime.calls).toEqual(["BP009", "BP001", "BP009", "BP001"]);
    expect(manager.seedView("b")?.metadata.get("kernel_cache")).toBe("fallback");

    // A slow fetch (fresh manager: two more failures would open the kernel breaker).
    const slow = makeManager();
    slow.manager.registerHost(HOST);
    slow.runtime.latencies["BP010"] = 50;
    slow.manager.handleCommand(seedCommand(slow.clock, "c", GERMINATE, "BP010"));
    slow.manager.handleCommand(seedCommand(slow.clock, "d", GERMINATE, "BP010"));
    expect(slow.runtime.calls).toEqual(["BP010", "BP001", "BP010", "BP001"]);
    expect(slow.manager.seedView("d")?.metadata.get("kernel_cache")).toBe("miss");
    expect(slow.manager.gpuCacheStats()?.size).toBe(0);
  });

  it("5: retire deletes the GPU cache entry of the seed's blueprint", () => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE, "BP002"));
    expect(manager.gpuCacheStats()?.size).toBe(1);
    manager.handleCommand(seedCommand(clock, "s1", CULL));
    expect(manager.gpuCacheStats()?.size).toBe(0);
    manager.handleCommand(seedCommand(clock, "s2", GERMINATE, "BP002"));
    expect(runtime.calls).toEqual(["BP002", "BP002"]);
    expect(manager.seedView("s2")?.metadata.get("kernel_cache")).toBe("miss");
  });

  it("7: blend_allowed is 1.0 only in BLENDING..FOSSILIZED (0 when CULLED/EMBARGOED)", () => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "ok", GERMINATE));
    runtime.latencies["SLOW"] = 99;
    manager.handleCommand(seedCommand(clock, "bad", GERMINATE, "SLOW"));
    const { manager: m0, clock: c0 } = makeManager({ embargoSeconds: 0 });
    m0.handleCommand(seedCommand(c0, "culled", GERMINATE)); // no host ⇒ G3 fails; no embargo ⇒ stays CULLED
    const driven = makeManager({ pacing: "driven" });
    driven.manager.registerHost(HOST);
    driven.manager.handleCommand(seedCommand(driven.clock, "t", GERMINATE));
    driven.manager.handleCommand(seedCommand(driven.clock, "b", GERMINATE));
    driven.manager.handleCommand(seedCommand(driven.clock, "b", SeedOperation.SEED_OP_START_GRAFTING));

    const allowed = (m: typeof manager, id: string) => m.seedState(id)?.metrics.get("blend_allowed");
    expect(manager.seedState("ok")?.stage).toBe(Stage.SEED_STAGE_PROBATIONARY);
    expect(allowed(manager, "ok")).toBe(1);
    expect(manager.seedState("bad")?.stage).toBe(Stage.SEED_STAGE_EMBARGOED);
    expect(allowed(manager, "bad")).toBe(0);
    expect(m0.seedState("culled")?.stage).toBe(Stage.SEED_STAGE_CULLED);
    expect(allowed(m0, "culled")).toBe(0);
    expect(driven.manager.seedState("t")?.stage).toBe(Stage.SEED_STAGE_TRAINING);
    expect(allowed(driven.manager, "t")).toBe(0);
    expect(driven.manager.seedState("b")?.stage).toBe(Stage.SEED_STAGE_BLENDING);
    expect(allowed(driven.manager, "b")).toBe(1);
    for (const op of [SeedOperation.SEED_OP_STABILIZE, SeedOperation.SEED_OP_EVALUATE, SeedOperation.SEED_OP_FOSSILIZE]) {
      driven.manager.handleCommand(seedCommand(driven.clock, "b", op));
      expect(allowed(driven.manager, "b")).toBe(1);
    }
    expect(driven.manager.seedState("b")?.stage).toBe(Stage.SEED_STAGE_FOSSILIZED);
  });

  it("9: germinate on an EMBARGOED seed after the embargo is a transition_rejected, no kernel fetch", () => {
    const { manager, clock, runtime } = makeManager();
    runtime.latencies["SLOW"] = 99;
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE, "SLOW"));
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_EMBARGOED);
    clock.advance(31);
    const calls = runtime.calls.length;

    const out = manager.handleCommand(seedCommand(clock, "s1", GERMINATE, "BP001"));
    expect(runtime.calls.length).toBe(calls);
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_EMBARGOED);
    const [rejected] = find(out.events, "transition_rejected");
    expect(rejected?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_WARNING);
    expect(rejected?.attributes).toMatchObject({ seed_id: "s1", stage: "SEED_STAGE_EMBARGOED", target_stage: "SEED_STAGE_GERMINATED" });
    expect(names(out.events)).not.toContain("breaker_event");
    expect(names(out.events)).not.toContain("gate_failure");
  });

  it("10: germinate before embargo_until emits seed_embargoed and nothing else", () => {
    const { manager, clock, runtime } = makeManager();
    runtime.latencies["SLOW"] = 99;
    manager.handleCommand(seedCommand(clock, "s1", GERMINATE, "SLOW"));
    clock.advance(29);
    const calls = runtime.calls.length;
    const breaker = manager.kernelBreaker.snapshot();
    const gates = new Map(manager.seedView("s1")?.lastGateResults);
    const metadata = new Map(manager.seedView("s1")?.metadata);

    const out = manager.handleCommand(seedCommand(clock, "s1", GERMINATE, "BP002"));
    expect(names(out.events)).toEqual(["seed_operation", "seed_embargoed"]);
    const [embargoed] = find(out.events, "seed_embargoed");
    expect(embargoed?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_WARNING);
    expect(embargoed?.attributes).toMatchObject({ seed_id: "s1", blueprint_id: "BP002", remaining_s: "1.000" });
    expect(runtime.calls.length).toBe(calls);
    expect(manager.kernelBreaker.snapshot()).toEqual(breaker);
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_EMBARGOED);
    expect(new Map(manager.seedView("s1")?.lastGateResults)).toEqual(gates);
    expect(new Map(manager.seedView("s1")?.metadata)).toEqual(metadata);
  });

  it("15: a CRITICAL global event (emergency) flushes a global packet without finalizeStep", () => {
    const { manager, clock } = makeManager();
    const out = manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_EMERGENCY }));
    expect(out.accepted).toBe(true);
    const packets = manager.packets.peek();
    expect(packets.map((p) => p.packetId)).toEqual(["kasmina-global-0"]);
    expect(packets[0]?.systemHealth?.indicators).toEqual({ seeds: "0", priority: "MESSAGE_PRIORITY_CRITICAL", step_index: "" });
    expect(names(packets[0]?.events ?? [])).toEqual(["emergency_cleanup"]);
    // Nothing is left for finalizeStep.
    expect(manager.finalizeStep(undefined)).toBe(0);
  });

  it("16: a seed first made ephemeral by a violation, then germinated, survives finalizeStep", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    manager.recordIsolationViolation("e1");
    expect(manager.isEphemeral("e1")).toBe(true);
    expect(manager.seedIds()).toEqual([]);
    manager.handleCommand(seedCommand(clock, "e1", GERMINATE));
    expect(manager.isEphemeral("e1")).toBe(false);
    expect(manager.seedIds()).toEqual(["e1"]);
    manager.finalizeStep(1n);
    expect(manager.hasSeed("e1")).toBe(true);
    // Its violation is sticky, so the germinate failed G1 (spec §8.5 / §17.11, kept).
    expect(manager.stageOf("e1")).toBe(Stage.SEED_STAGE_EMBARGOED);
  });

  it("16: a seed first made ephemeral by annotations, then germinated, survives finalizeStep", () => {
    const { manager, clock } = makeManager();
    manager.registerHost(HOST);
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_PAUSE, targetSeedId: "e2", annotations: new Map(Object.entries({ risk_reason: "drift" })) }));
    expect(manager.isEphemeral("e2")).toBe(true);
    manager.handleCommand(seedCommand(clock, "e2", GERMINATE));
    manager.finalizeStep(1n);
    manager.finalizeStep(2n);
    expect(manager.hasSeed("e2")).toBe(true);
    expect(manager.stageOf("e2")).toBe(Stage.SEED_STAGE_PROBATIONARY);
    expect(manager.seedView("e2")?.metadata.get("tamiyo_risk_reason")).toBe("drift");
  });

  it("22: a GPU cache hit reports latency 0 and drops kasmina.kernel.fetch_latency_ms", () => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    runtime.latencies["BP002"] = 4;
    manager.handleCommand(seedCommand(clock, "a", GERMINATE, "BP002"));
    manager.finalizeStep(1n);
    const first = manager.packets.drain();
    expect(first[0]?.metrics.find((m) => m.name === "kasmina.kernel.fetch_latency_ms")?.value).toBe(4);

    manager.handleCommand(seedCommand(clock, "b", GERMINATE, "BP002"));
    expect(runtime.calls).toEqual(["BP002"]);
    expect(manager.seedView("b")?.metadata.get("kernel_cache")).toBe("hit");
    expect(manager.seedView("b")?.lastKernelLatencyMs).toBe(0);
    expect(manager.stageOf("b")).toBe(Stage.SEED_STAGE_PROBATIONARY);
    manager.finalizeStep(2n);
    const packets = manager.packets.drain();
    expect(packets).toHaveLength(2);
    for (const p of packets) expect(p.metrics.map((m) => m.name)).not.toContain("kasmina.kernel.fetch_latency_ms");
    const b = packets.find((p) => p.systemHealth?.indicators.get("seed_id") === "b");
    expect(b?.metrics.find((m) => m.name === "kasmina.seed.kernel_latency_ms")?.value).toBe(0);
    expect(b?.metrics.find((m) => m.name === "kasmina.cache.gpu_hit_rate")?.value).toBe(0.5);
  });

  it("3: the teacher is pinned through emergency cleanup unless include_teacher", () => {
    const { manager, clock } = makeManager();
    manager.registerTeacher([{ key: "t.w", shape: [4], trainable: true, elementBytes: 4 }], []);
    clock.advance(10_000); // far past any TTL
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_EMERGENCY }));
    expect(manager.memory.teacher()).toBeDefined();
    expect(manager.memory.kernelCache.size).toBe(1);

    const out = manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_EMERGENCY, annotations: new Map(Object.entries({ include_teacher: "TRUE" })) }));
    expect(find(out.events, "emergency_cleanup")[0]?.attributes).toMatchObject({ include_teacher: "true", kernel_cache_cleared: "1" });
    expect(manager.memory.teacher()).toBeUndefined();
    expect(manager.memory.kernelCache.size).toBe(0);
  });

  it("kernel breaker opens after 3 fetch failures, then denies with a synthetic G1 (no gate_event)", () => {
    const { manager, clock, runtime } = makeManager();
    manager.registerHost(HOST);
    runtime.failing.add("BAD");
    const actions: string[] = [];
    for (const id of ["a", "b", "c"]) {
      const out = manager.handleCommand(seedCommand(clock, id, GERMINATE, "BAD"));
      actions.push(...find(out.events, "breaker_event").map((e) => `${e.attributes.get("action")}:${e.attributes.get("reason")}`));
      // A fetch error leaves latency = budget, so G2 passes and the seed proceeds on the fallback.
      expect(manager.stageOf(id)).toBe(Stage.SEED_STAGE_PROBATIONARY);
      expect(manager.seedView(id)?.lastKernelLatencyMs).toBe(10);
      expect(manager.seedView(id)?.usedFallback).toBe(true);
    }
    expect(actions).toEqual(["count:fetch_error", "count:fetch_error", "transition:fetch_error"]);
    expect(manager.kernelBreaker.snapshot().state).toBe(CircuitBreakerState.CIRCUIT_STATE_OPEN);

    const calls = runtime.calls.length;
    const out = manager.handleCommand(seedCommand(clock, "d", GERMINATE, "BP001"));
    expect(runtime.calls.length).toBe(calls);
    const [denied] = find(out.events, "breaker_event");
    expect(denied?.attributes).toEqual({ seed_id: "d", breaker_state: "CIRCUIT_STATE_OPEN", action: "denied", reason: "breaker_open" });
    expect(denied?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_WARNING);
    expect(find(out.events, "gate_event").map((e) => e.attributes.get("gate"))).toEqual(["SEED_GATE_G0_SANITY"]);
    expect(find(out.events, "gate_failure")[0]?.attributes).toEqual({ seed_id: "d", gate: "SEED_GATE_G1_GRADIENT_HEALTH", reason: "breaker_denied" });
    expect(manager.stageOf("d")).toBe(Stage.SEED_STAGE_EMBARGOED);
    expect(manager.rollbackPayload("d")?.["reason"]).toBe("breaker_denied");
    // The synthetic result is not stored as a gate result.
    expect(manager.seedView("d")?.lastGateResults.has(Gate.SEED_GATE_G1_GRADIENT_HEALTH)).toBe(false);

    // After the 60 s cool-down the breaker half-opens and lets a fetch through.
    clock.advance(61);
    const later = manager.handleCommand(seedCommand(clock, "e", GERMINATE, "BP001"));
    expect(find(later.events, "breaker_event").map((e) => `${e.attributes.get("breaker_state")}:${e.attributes.get("action")}:${e.attributes.get("reason")}`)).toEqual([
      "CIRCUIT_STATE_HALF_OPEN:transition:cooldown_elapsed",
      "CIRCUIT_STATE_HALF_OPEN:count:success",
    ]);
  });

  it("kernel breaker: fetch failures across seed packets; the global packet reports fallback_applied", () => {
    const { manager, clock, runtime } = makeManager();
    runtime.failing.add("BAD");
    for (const id of ["a", "b", "c"]) manager.handleCommand(seedCommand(clock, id, GERMINATE, "BAD"));
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_OPTIMIZER }));
    manager.finalizeStep(1n);
    const events = allEvents(manager.packets.peek());
    expect(find(events, "breaker_event").map((e) => e.attributes.get("action"))).toEqual(["count", "count", "transition"]);
    // The fetch errors never updated the manager's last latency (spec §8.1 / §17.17).
    expect(find(events, "fallback_applied")[0]?.attributes).toEqual({ lat: "0.0" });
  });
});
