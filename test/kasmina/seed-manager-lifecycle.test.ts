// SeedManager lifecycle: driven pacing (DESIGN decision 27), gates around transitions, the
// post-transition hook (spec §3.3), retire stage effects, rollback records, alpha and
// exportSeedStates (spec §15).
import { describe, expect, it } from "vitest";
import { KasminaError } from "../../src/kasmina/errors.js";
import type { PrefetchPort } from "../../src/kasmina/seed-manager.js";
import { CommandType, SeedLifecycleStage as Stage, SeedOperation, TelemetryLevel } from "../../src/leyline.js";
import { find, makeManager, names, RecordingIsolation, seedCommand, signed } from "./manager-support.js";

const HOST = [{ key: "host.w", shape: [2], trainable: true, elementBytes: 4 }];
const OP = SeedOperation;

const isolationPort = (): RecordingIsolation => new RecordingIsolation();

describe("driven pacing (decision 27)", () => {
  it("germinate stops in TRAINING after G1, then one stage per seed operation behind its gate", () => {
    const isolation = isolationPort();
    const { manager, clock } = makeManager({ pacing: "driven", isolation });
    manager.registerHost(HOST);

    const germ = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    expect(names(germ.events)).toEqual(["seed_operation", "gate_event", "breaker_event", "gate_event", "isolation_breaker"]);
    expect(find(germ.events, "gate_event").map((e) => e.attributes.get("gate"))).toEqual(["SEED_GATE_G0_SANITY", "SEED_GATE_G1_GRADIENT_HEALTH"]);
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_TRAINING);
    expect(manager.seedView("s1")?.alpha).toBe(0);
    const session = isolation.sessions[0];
    expect(session?.collecting).toBe(true);

    const graft = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_START_GRAFTING));
    expect(names(graft.events)).toEqual(["seed_operation", "gate_event"]);
    expect(graft.events[1]?.attributes).toEqual({ seed_id: "s1", gate: "SEED_GATE_G2_STABILITY", passed: "true", fallback_used: "false" });
    let ctx = manager.seedView("s1");
    expect(ctx?.stage).toBe(Stage.SEED_STAGE_BLENDING);
    expect(ctx?.alphaSteps).toBe(1);
    expect(ctx?.alpha).toBeCloseTo(0.010987, 6);
    expect(ctx?.metadata.get("alpha")).toBe("0.0110");
    expect(session?.collecting).toBe(true);

    const stabilize = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_STABILIZE));
    expect(stabilize.events[1]?.attributes).toEqual({ seed_id: "s1", gate: "SEED_GATE_G3_INTERFACE", passed: "true", interface: "ok" });
    ctx = manager.seedView("s1");
    expect(ctx?.stage).toBe(Stage.SEED_STAGE_SHADOWING);
    expect(ctx?.alpha).toBe(1);
    expect(ctx?.metadata.get("alpha")).toBe("1.0000");
    expect(session?.collecting).toBe(false);
    expect(session?.log.slice(-2)).toEqual(["disable", "reset"]);

    const evaluate = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_EVALUATE));
    expect(evaluate.events[1]?.attributes).toEqual({ seed_id: "s1", gate: "SEED_GATE_G4_SYSTEM_IMPACT", passed: "true", status: "nominal" });
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_PROBATIONARY);

    const fossilize = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_FOSSILIZE));
    expect(names(fossilize.events)).toEqual(["seed_operation"]);
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_FOSSILIZED);
    expect(manager.seedView("s1")?.alpha).toBe(1);
    // Every other operation now no longer fits.
    const again = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_FOSSILIZE));
    expect(find(again.events, "transition_rejected")[0]?.attributes).toMatchObject({ stage: "SEED_STAGE_FOSSILIZED", target_stage: "SEED_STAGE_FOSSILIZED" });
  });

  it.each([
    ["SEED_OP_STABILIZE", OP.SEED_OP_STABILIZE, "SEED_STAGE_SHADOWING"],
    ["SEED_OP_EVALUATE", OP.SEED_OP_EVALUATE, "SEED_STAGE_PROBATIONARY"],
    ["SEED_OP_FOSSILIZE", OP.SEED_OP_FOSSILIZE, "SEED_STAGE_FOSSILIZED"],
    ["SEED_OP_START_TRAINING", OP.SEED_OP_START_TRAINING, "SEED_STAGE_TRAINING"],
  ] as const)("%s on a TRAINING seed is transition_rejected and changes nothing", (name, op, target) => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    const gates = new Map(manager.seedView("s1")?.lastGateResults);
    const out = manager.handleCommand(seedCommand(clock, "s1", op));
    expect(names(out.events)).toEqual(["seed_operation", "transition_rejected"]);
    const [rejected] = find(out.events, "transition_rejected");
    expect(rejected?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_WARNING);
    expect(rejected?.attributes).toMatchObject({ seed_id: "s1", operation: name, stage: "SEED_STAGE_TRAINING", target_stage: target });
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_TRAINING);
    expect(manager.seedView("s1")?.alpha).toBe(0);
    expect(new Map(manager.seedView("s1")?.lastGateResults)).toEqual(gates);
  });

  it("an operation on an unmanaged seed is transition_rejected (stage UNKNOWN)", () => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    const out = manager.handleCommand(seedCommand(clock, "nope", OP.SEED_OP_START_GRAFTING));
    expect(find(out.events, "transition_rejected")[0]?.attributes).toMatchObject({ seed_id: "nope", stage: "SEED_STAGE_UNKNOWN", target_stage: "SEED_STAGE_BLENDING" });
    expect(manager.seedIds()).toEqual([]);
  });

  it("START_TRAINING on a GERMINATED seed still waiting for its kernel is rejected (kernel not attached)", () => {
    const prefetch: PrefetchPort = { requestKernel: () => "req-1" };
    const { manager, clock, runtime } = makeManager({ pacing: "driven", prefetch, trainingRunId: "run-1" });
    manager.registerHost(HOST);
    const germ = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    expect(names(germ.events)).toEqual(["seed_operation", "gate_event", "prefetch_requested"]);
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_GERMINATED);
    expect(runtime.calls).toEqual([]);
    const out = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_START_TRAINING));
    expect(find(out.events, "transition_rejected")[0]?.attributes).toMatchObject({ stage: "SEED_STAGE_GERMINATED", target_stage: "SEED_STAGE_TRAINING", reason: "kernel not attached" });
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_GERMINATED);
  });

  it("START_GRAFTING behind a failing G2 (slow kernel) culls and embargoes the seed", () => {
    const { manager, clock, runtime } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    runtime.latencies["SLOW"] = 12.5;
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE, "SLOW"));
    // G1 only looks at attachment and violations: the slow seed trains on the fallback.
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_TRAINING);
    expect(manager.seedView("s1")?.kernel?.blueprintId).toBe("BP001");
    const out = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_START_GRAFTING));
    expect(names(out.events)).toEqual(["seed_operation", "gate_event", "gate_failure", "rollback_ready"]);
    expect(out.events[1]?.attributes).toMatchObject({ passed: "false", latency_ms: "12.50", budget_ms: "10.00" });
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_EMBARGOED);
  });

  it("STABILIZE without a host fails G3 and culls from BLENDING", () => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_START_GRAFTING));
    const out = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_STABILIZE));
    expect(find(out.events, "gate_failure")[0]?.attributes).toEqual({ seed_id: "s1", gate: "SEED_GATE_G3_INTERFACE", reason: "host model not registered" });
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_EMBARGOED);
    expect(manager.rollbackPayload("s1")).toEqual({ seed_id: "s1", stage: "SEED_STAGE_EMBARGOED", reason: "host model not registered" });
  });

  it("EVALUATE behind G4 fails when a violation arrived while SHADOWING", () => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    for (const op of [OP.SEED_OP_GERMINATE, OP.SEED_OP_START_GRAFTING, OP.SEED_OP_STABILIZE]) manager.handleCommand(seedCommand(clock, "s1", op));
    manager.recordIsolationViolation("s1");
    const out = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_EVALUATE));
    expect(find(out.events, "gate_event")[0]?.attributes).toMatchObject({ gate: "SEED_GATE_G4_SYSTEM_IMPACT", passed: "false", reason: "performance status violations", status: "violations" });
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_EMBARGOED);
  });
});

describe("immediate pacing details", () => {
  it("without a host G3 fails in BLENDING: BLENDING → CULLED → EMBARGOED, alpha from the BLENDING step", () => {
    const { manager, clock } = makeManager();
    const out = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    expect(find(out.events, "gate_event").map((e) => `${e.attributes.get("gate")}:${e.attributes.get("passed")}`)).toEqual([
      "SEED_GATE_G0_SANITY:true",
      "SEED_GATE_G1_GRADIENT_HEALTH:true",
      "SEED_GATE_G2_STABILITY:true",
      "SEED_GATE_G3_INTERFACE:false",
    ]);
    const ctx = manager.seedView("s1");
    expect(ctx?.stage).toBe(Stage.SEED_STAGE_EMBARGOED);
    expect(ctx?.alphaSteps).toBe(1);
    expect(ctx?.metadata.get("alpha")).toBe("0.0110");
    expect(find(out.events, "rollback_ready")[0]?.attributes.get("stage")).toBe("SEED_STAGE_EMBARGOED");
  });

  it("embargo 0: gate failure stops at CULLED and sets no deadline", () => {
    const { manager, clock } = makeManager({ embargoSeconds: 0 });
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_CULLED);
    expect(manager.seedView("s1")?.embargoUntil).toBeNull();
    const again = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    expect(find(again.events, "transition_rejected")[0]?.attributes).toMatchObject({ stage: "SEED_STAGE_CULLED", target_stage: "SEED_STAGE_GERMINATED" });
  });

  it("a kernel parameter that is also a host parameter records one violation and fails G1", () => {
    const { manager, clock } = makeManager();
    manager.registerHost([{ key: "s1/w", shape: [2, 2], trainable: true, elementBytes: 4 }]);
    const out = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    expect(find(out.events, "violation_recorded")[0]?.attributes).toEqual({ violations: "1", seed_id: "s1" });
    expect(find(out.events, "gate_failure")[0]?.attributes).toEqual({ seed_id: "s1", gate: "SEED_GATE_G1_GRADIENT_HEALTH", reason: "gradient isolation violations present" });
    expect(manager.globalViolationCount).toBe(1);
    expect(manager.stageOf("s1")).toBe(Stage.SEED_STAGE_EMBARGOED);
  });

  it("a gate failure frees the seed's parameters and kernel-cache entry", () => {
    const { manager, clock, runtime } = makeManager();
    runtime.latencies["SLOW"] = 50;
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE, "SLOW"));
    expect(manager.validateParameters("s1", ["s1/w"])).toBe(false);
    expect(manager.memory.kernelCache.size).toBe(0);
    expect(manager.seedView("s1")?.kernel).toBeUndefined();
  });
});

describe("retire (CULL / CANCEL) stage effects", () => {
  it("from EMBARGOED: RESETTING → DORMANT, violations cleared, rollback stage DORMANT", () => {
    const { manager, clock, runtime } = makeManager();
    runtime.latencies["SLOW"] = 50;
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE, "SLOW"));
    const out = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_CANCEL));
    expect(find(out.events, "gate_event")[0]?.attributes).toEqual({ seed_id: "s1", gate: "SEED_GATE_G5_RESET", passed: "true" });
    expect(find(out.events, "rollback_ready")[0]?.attributes).toEqual({ seed_id: "s1", stage: "SEED_STAGE_DORMANT" });
    expect(manager.rollbackPayload("s1")?.["reason"]).toBe("retired");
    expect(manager.hasSeed("s1")).toBe(false);
  });

  it("from FOSSILIZED the stage stays put (CULLED not allowed) and the seed is still removed", () => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    for (const op of [OP.SEED_OP_GERMINATE, OP.SEED_OP_START_GRAFTING, OP.SEED_OP_STABILIZE, OP.SEED_OP_EVALUATE, OP.SEED_OP_FOSSILIZE]) {
      manager.handleCommand(seedCommand(clock, "s1", op));
    }
    const out = manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_CULL));
    expect(find(out.events, "rollback_ready")[0]?.attributes).toEqual({ seed_id: "s1", stage: "SEED_STAGE_FOSSILIZED" });
    expect(manager.rollbackPayload("s1")).toEqual({ seed_id: "s1", stage: "SEED_STAGE_FOSSILIZED", reason: "retired" });
    expect(manager.hasSeed("s1")).toBe(false);
  });

  it("retire closes the isolation session", () => {
    const isolation = isolationPort();
    const { manager, clock } = makeManager({ isolation });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    expect(manager.isolationSession("s1")).toBe(isolation.sessions[0]);
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_CULL));
    expect(manager.isolationSession("s1")).toBeUndefined();
    expect(isolation.sessions[0]?.log).toContain("close");
  });
});

describe("rollback records, alpha and exported states (spec §15)", () => {
  it("rollback payloads survive deletion and the latest record wins", () => {
    const { manager, clock, runtime } = makeManager();
    runtime.latencies["SLOW"] = 50;
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE, "SLOW"));
    expect(manager.rollbackPayload("s1")?.["reason"]).toBe("latency budget exceeded");
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_CULL));
    expect(manager.hasSeed("s1")).toBe(false);
    expect(manager.rollbackPayload("s1")).toEqual({ seed_id: "s1", stage: "SEED_STAGE_DORMANT", reason: "retired" });
    // A copy: mutating it does not change the stored record.
    const copy = manager.rollbackPayload("s1");
    if (copy) copy["reason"] = "changed";
    expect(manager.rollbackPayload("s1")?.["reason"]).toBe("retired");
    expect(manager.rollbackPayload("never")).toBeUndefined();
  });

  it("advanceAlpha moves alpha only while BLENDING", () => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    expect(manager.advanceAlpha("s1", 5)).toEqual({ alpha: 0, alphaSteps: 0, stage: Stage.SEED_STAGE_TRAINING });
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_START_GRAFTING));
    const r = manager.advanceAlpha("s1", 9);
    expect(r?.alphaSteps).toBe(10);
    expect(r?.alpha).toBeCloseTo(0.5, 12);
    expect(manager.seedView("s1")?.metadata.get("alpha")).toBe("0.5000");
    expect(manager.advanceAlpha("s1", -3)?.alphaSteps).toBe(10);
    expect(manager.advanceAlpha("s1", 15)?.alpha).toBeCloseTo(0.999447, 6);
    expect(manager.advanceAlpha("missing", 1)).toBeUndefined();
  });

  it("exportSeedStates: every context (ephemeral too), age_epochs = current epoch, schedule constants", () => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_GERMINATE));
    manager.handleCommand(seedCommand(clock, "s1", OP.SEED_OP_START_GRAFTING));
    manager.recordIsolationViolation("eph");
    manager.updateEpoch(7);
    const states = manager.exportSeedStates();
    expect(states.map((s) => s.seedId)).toEqual(["s1", "eph"]);
    const s1 = states[0];
    expect(s1?.stage).toBe(Stage.SEED_STAGE_BLENDING);
    expect(s1?.ageEpochs).toBe(7);
    expect(s1?.metrics.get("alpha")).toBeCloseTo(0.010987, 6);
    expect(s1?.metrics).toMatchObject({ alpha_steps: 1, alpha_total_steps: 20, alpha_temperature: 2, blend_allowed: 1 });
    expect([...(s1?.metrics.keys() ?? [])]).toEqual(["alpha", "alpha_steps", "alpha_total_steps", "alpha_temperature", "blend_allowed"]);
    expect(states[1]).toMatchObject({ seedId: "eph", stage: Stage.SEED_STAGE_DORMANT, ageEpochs: 7, gradientNorm: 0, riskScore: 0 });
    expect(manager.currentEpoch).toBe(7);

    const custom = makeManager({ alphaTotalSteps: 40, alphaTemperature: 4 });
    custom.manager.recordIsolationViolation("x");
    expect(custom.manager.exportSeedStates()[0]?.metrics).toMatchObject({ alpha_total_steps: 40, alpha_temperature: 4 });
  });

  it("updateEpoch rejects a negative epoch and keeps the current one", () => {
    const { manager } = makeManager();
    manager.updateEpoch(3);
    expect(() => manager.updateEpoch(-1)).toThrow(KasminaError);
    expect(() => manager.updateEpoch(-1)).toThrow("epoch must be non-negative");
    expect(manager.currentEpoch).toBe(3);
  });
});

describe("refusals that change nothing (decision 9 and pause)", () => {
  it("a germinate the lifecycle cannot take leaves the seed's metadata and kernel untouched", () => {
    const { manager, clock, runtime } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s", OP.SEED_OP_GERMINATE, "BP001"));
    expect(manager.stageOf("s")).toBe(Stage.SEED_STAGE_TRAINING);
    const fetches = runtime.calls.length;
    const out = manager.handleCommand(seedCommand(clock, "s", OP.SEED_OP_GERMINATE, "BP_OTHER"));
    expect(names(out.events)).toEqual(["seed_operation", "transition_rejected"]);
    expect(manager.seedView("s")?.metadata.get("blueprint_id")).toBe("BP001");
    expect(manager.seedView("s")?.kernelAttached).toBe(true);
    expect(runtime.calls.length).toBe(fetches);
  });

  it("a paused seed cannot advance until it is resumed", () => {
    const { manager, clock } = makeManager({ pacing: "driven" });
    manager.registerHost(HOST);
    manager.handleCommand(seedCommand(clock, "s", OP.SEED_OP_GERMINATE));
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_PAUSE, targetSeedId: "s" }));
    const refused = manager.handleCommand(seedCommand(clock, "s", OP.SEED_OP_START_GRAFTING));
    expect(find(refused.events, "transition_rejected")[0]?.attributes.get("reason")).toBe("seed is paused");
    expect(manager.stageOf("s")).toBe(Stage.SEED_STAGE_TRAINING);
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_PAUSE, targetSeedId: "s", annotations: new Map(Object.entries({ resume: "true" })) }));
    manager.handleCommand(seedCommand(clock, "s", OP.SEED_OP_START_GRAFTING));
    expect(manager.stageOf("s")).toBe(Stage.SEED_STAGE_BLENDING);
  });
});
