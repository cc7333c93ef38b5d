// The control-plane RPCs over a real socket, with commands signed as a Python sender signs them.
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import type { KasminaServiceClient, WatchTelemetryResponse } from "../../generated/esper/kasmina/v1/kasmina.js";
import {
  AdaptationCommand,
  CircuitBreakerState,
  CommandType,
  SeedLifecycleStage as Stage,
  SeedOperation,
  TelemetryLevel,
  type TelemetryEvent,
  type TelemetryPacket,
} from "../../src/leyline.js";
import { call } from "../support/grpc-clients.js";
import { breakerCommand, command, germinate, seedOp, startHarness, type Harness } from "../support/harness.js";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const HOST = [{ key: "host.layer1.weight", shape: [64, 64], trainable: true, elementBytes: 4 }];

async function apply(client: KasminaServiceClient, cmd: AdaptationCommand) {
  return call(client, client.applyCommand, { command: cmd });
}

async function drain(client: KasminaServiceClient): Promise<TelemetryPacket[]> {
  return (await call(client, client.drainTelemetry, { maxPackets: 0 })).packets;
}

const eventsOf = (packets: TelemetryPacket[]): TelemetryEvent[] => packets.flatMap((p) => p.events);
const descriptions = (events: TelemetryEvent[]): string[] => events.map((e) => e.description);

async function expectStatus(promise: Promise<unknown>, code: status, detail: RegExp): Promise<void> {
  const error = (await promise.then(
    () => undefined,
    (e: unknown) => e,
  )) as ServiceError | undefined;
  expect(error, `expected status ${status[code]}`).toBeDefined();
  expect(error?.code).toBe(code);
  expect(error?.details).toMatch(detail);
}

describe("training-controller cycle (driven pacing)", () => {
  it("registers, germinates, advances stage by stage, blends, exports, culls and collects garbage", async () => {
    harness = await startHarness();
    const { client, clock } = harness;
    expect(await call(client, client.registerHost, { parameters: HOST })).toEqual({ parameterCount: 1 });

    const germinated = await apply(client, germinate(clock, "seed-a"));
    expect(germinated.seed?.stage).toBe(Stage.SEED_STAGE_TRAINING);
    expect(descriptions(germinated.events)).toEqual([
      "seed_operation",
      "gate_event",
      "breaker_event",
      "gate_event",
      "isolation_breaker",
    ]);

    const blending = await apply(client, seedOp(clock, "seed-a", SeedOperation.SEED_OP_START_GRAFTING));
    expect(blending.seed?.stage).toBe(Stage.SEED_STAGE_BLENDING);
    expect(blending.seed?.metrics.get("alpha_steps")).toBe(1);
    expect(blending.seed?.metrics.get("alpha")).toBeCloseTo(0.010987, 5);

    const advanced = await call(client, client.advanceAlpha, { seedId: "seed-a", steps: 9 });
    expect(advanced).toMatchObject({ alphaSteps: 10, stage: Stage.SEED_STAGE_BLENDING });
    expect(advanced.alpha).toBeCloseTo(0.5, 12);

    expect(await call(client, client.finalizeStep, { stepIndex: 1n })).toEqual({ packetsEmitted: 1 });
    const [packet] = await drain(client);
    expect(packet?.packetId).toBe("kasmina-seed-seed-a-0");
    expect(packet?.systemHealth?.indicators).toEqual({ seed_id: "seed-a", priority: "MESSAGE_PRIORITY_HIGH", step_index: "1" });
    expect(packet?.events.at(-1)).toMatchObject({ description: "seed_stage", attributes: { stage: "SEED_STAGE_BLENDING", alpha: "0.5000" } });

    // Heartbeat: a new step index emits a packet even without events; the same one does not.
    expect(await call(client, client.finalizeStep, { stepIndex: 2n })).toEqual({ packetsEmitted: 1 });
    expect(await call(client, client.finalizeStep, { stepIndex: 2n })).toEqual({ packetsEmitted: 0 });

    expect((await apply(client, seedOp(clock, "seed-a", SeedOperation.SEED_OP_STABILIZE))).seed?.stage).toBe(Stage.SEED_STAGE_SHADOWING);
    expect((await apply(client, seedOp(clock, "seed-a", SeedOperation.SEED_OP_EVALUATE))).seed?.stage).toBe(Stage.SEED_STAGE_PROBATIONARY);
    const exported = await call(client, client.exportSeedStates, {});
    expect(exported.seeds).toHaveLength(1);
    expect(exported.seeds[0]?.metrics).toMatchObject({ alpha: 1, blend_allowed: 1, alpha_total_steps: 20, alpha_temperature: 2 });

    const culled = await apply(client, seedOp(clock, "seed-a", SeedOperation.SEED_OP_CULL));
    expect(culled.seed).toBeUndefined();
    expect(descriptions(culled.events)).toContain("rollback_ready");
    expect((await call(client, client.exportSeedStates, {})).seeds).toEqual([]);
    expect((await call(client, client.getRollbackPayload, { seedId: "seed-a" })).payload).toEqual({
      seed_id: "seed-a",
      stage: "SEED_STAGE_DORMANT",
      reason: "retired",
    });

    for (let epoch = 1; epoch < 10; epoch++) {
      expect((await call(client, client.updateEpoch, { epoch })).gc).toMatchObject({ ran: false, skippedReason: "frequency_not_met" });
    }
    expect((await call(client, client.updateEpoch, { epoch: 10 })).gc).toMatchObject({ ran: true, gcCounter: 1n, gcEpoch: 10 });
    await call(client, client.finalizeStep, {});
    const gcEvents = eventsOf(await drain(client)).filter((e) => e.description === "memory_gc");
    expect(gcEvents).toHaveLength(1);
    expect(gcEvents[0]?.attributes).toMatchObject({ gc_counter: "1", gc_epoch: "10" });
  });

  it("rejects an operation that does not fit the seed's stage and changes nothing", async () => {
    harness = await startHarness();
    const { client, clock } = harness;
    await call(client, client.registerHost, { parameters: HOST });
    await apply(client, germinate(clock, "s"));
    const response = await apply(client, seedOp(clock, "s", SeedOperation.SEED_OP_EVALUATE));
    expect(response.seed?.stage).toBe(Stage.SEED_STAGE_TRAINING);
    const rejected = response.events.find((e) => e.description === "transition_rejected");
    expect(rejected).toMatchObject({
      level: TelemetryLevel.TELEMETRY_LEVEL_WARNING,
      attributes: { seed_id: "s", operation: "SEED_OP_EVALUATE", stage: "SEED_STAGE_TRAINING", target_stage: "SEED_STAGE_PROBATIONARY" },
    });
  });
});

describe("Appendix B vectors over gRPC (immediate pacing)", () => {
  it("germinate with a host runs through to PROBATIONARY with alpha 1.0", async () => {
    harness = await startHarness({ KASMINA_LIFECYCLE_PACING: "immediate" });
    const { client, clock } = harness;
    await call(client, client.registerHost, { parameters: HOST });
    const response = await apply(client, germinate(clock, "s"));
    expect(response.seed?.stage).toBe(Stage.SEED_STAGE_PROBATIONARY);
    expect(response.seed?.metrics.get("alpha")).toBe(1);
    const gates = response.events.filter((e) => e.description === "gate_event").map((e) => e.attributes.get("gate"));
    expect(gates).toEqual([
      "SEED_GATE_G0_SANITY",
      "SEED_GATE_G1_GRADIENT_HEALTH",
      "SEED_GATE_G2_STABILITY",
      "SEED_GATE_G3_INTERFACE",
      "SEED_GATE_G4_SYSTEM_IMPACT",
    ]);
    expect(response.events.find((e) => e.description === "breaker_event")?.attributes).toMatchObject({ action: "count", reason: "success" });
    expect(response.events.find((e) => e.description === "isolation_breaker")).toMatchObject({
      level: TelemetryLevel.TELEMETRY_LEVEL_WARNING,
      attributes: { action: "count", reason: "success", component: "isolation" },
    });
  });

  it("a slow kernel falls back to BP001, fails G2 and is culled and embargoed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kasmina-catalog-"));
    const catalog = join(dir, "catalog.json");
    writeFileSync(
      catalog,
      JSON.stringify({
        blueprints: {
          BP001: { artifact_ref: "test://bp001", nominal_latency_ms: 1, parameters: [{ name: "w", shape: [4], trainable: true }] },
          BP_SLOW: { artifact_ref: "test://slow", nominal_latency_ms: 25, parameters: [{ name: "w", shape: [4], trainable: true }] },
        },
      }),
    );
    harness = await startHarness({ KASMINA_LIFECYCLE_PACING: "immediate", KASMINA_BLUEPRINT_CATALOG: catalog });
    const { client, clock } = harness;
    await call(client, client.registerHost, { parameters: HOST });
    const response = await apply(client, germinate(clock, "s", "BP_SLOW"));
    expect(response.seed?.stage).toBe(Stage.SEED_STAGE_EMBARGOED);
    expect(response.events.find((e) => e.description === "gate_failure")?.attributes).toMatchObject({
      gate: "SEED_GATE_G2_STABILITY",
      reason: "latency budget exceeded",
    });
    expect(response.events.find((e) => e.description === "rollback_ready")?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_WARNING);
    expect(response.events.find((e) => e.description === "breaker_event")?.attributes).toMatchObject({ reason: "latency_budget_exceeded" });
  });

  it("three violations escalate to CRITICAL and flush the seed's packet at once", async () => {
    harness = await startHarness();
    const { client } = harness;
    for (let i = 1; i <= 2; i++) {
      expect(await call(client, client.recordIsolationViolation, { seedId: "s" })).toEqual({
        totalViolations: i,
        isolationBreaker: CircuitBreakerState.CIRCUIT_STATE_CLOSED,
      });
    }
    expect(await drain(client)).toEqual([]);
    expect(await call(client, client.recordIsolationViolation, { seedId: "s" })).toEqual({
      totalViolations: 3,
      isolationBreaker: CircuitBreakerState.CIRCUIT_STATE_OPEN,
    });
    const packets = await drain(client);
    expect(packets).toHaveLength(1);
    expect(packets[0]?.systemHealth?.indicators).toMatchObject({ seed_id: "s", priority: "MESSAGE_PRIORITY_CRITICAL" });
    const violations = packets[0]?.events.filter((e) => e.description === "violation_recorded") ?? [];
    expect(violations.map((e) => e.level)).toEqual([
      TelemetryLevel.TELEMETRY_LEVEL_WARNING,
      TelemetryLevel.TELEMETRY_LEVEL_WARNING,
      TelemetryLevel.TELEMETRY_LEVEL_CRITICAL,
    ]);
  });

  it("update_epoch(9) queues no memory_gc; update_epoch(10) puts one in the next global packet", async () => {
    harness = await startHarness();
    const { client } = harness;
    await call(client, client.updateEpoch, { epoch: 9 });
    expect(await call(client, client.finalizeStep, {})).toEqual({ packetsEmitted: 0 });
    await call(client, client.updateEpoch, { epoch: 10 });
    await call(client, client.finalizeStep, {});
    const packets = await drain(client);
    expect(packets.map((p) => p.packetId)).toEqual(["kasmina-global-0"]);
    expect(descriptions(packets[0]?.events ?? [])).toEqual(["memory_gc"]);
  });
});

describe("verification over gRPC", () => {
  const cases: [string, (h: Harness) => AdaptationCommand, RegExp][] = [
    ["missing_signature", (h) => germinate(h.clock, "s", "BP001", {}), /^missing_signature/],
    ["invalid_signature", (h) => command(h.clock, { commandType: CommandType.COMMAND_OPTIMIZER }, "wrong-secret"), /^invalid_signature/],
    [
      "missing_command_id",
      (h) => command(h.clock, { commandType: CommandType.COMMAND_OPTIMIZER, commandId: "" }),
      /^missing_command_id/,
    ],
    ["missing_timestamp", (h) => command(h.clock, { commandType: CommandType.COMMAND_OPTIMIZER, issuedAt: undefined }), /^missing_timestamp/],
    [
      "stale_command",
      (h) => command(h.clock, { commandType: CommandType.COMMAND_OPTIMIZER, issuedAt: { seconds: BigInt(h.clock.wallMs() / 1000 - 61), nanos: 0 } }),
      /^stale_command/,
    ],
    [
      "issued_in_future",
      (h) => command(h.clock, { commandType: CommandType.COMMAND_OPTIMIZER, issuedAt: { seconds: BigInt(h.clock.wallMs() / 1000 + 6), nanos: 0 } }),
      /^issued_in_future/,
    ],
  ];

  it.each(cases)("%s → PERMISSION_DENIED, a command_rejected event, no state change", async (reason, build, detail) => {
    harness = await startHarness();
    const h = harness;
    let cmd = build(h);
    if (reason === "missing_signature") {
      cmd = AdaptationCommand.fromPartial({ ...cmd, annotations: new Map(Object.entries({})) });
    }
    await expectStatus(apply(h.client, cmd), status.PERMISSION_DENIED, detail);
    expect((await call(h.client, h.client.exportSeedStates, {})).seeds).toEqual([]);
    await call(h.client, h.client.finalizeStep, {});
    const rejected = eventsOf(await drain(h.client)).filter((e) => e.description === "command_rejected");
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.attributes.get("reason")).toBe(reason);
    expect(rejected[0]?.level).toBe(TelemetryLevel.TELEMETRY_LEVEL_ERROR);
  });

  it("a replayed command id is refused with nonce_replayed", async () => {
    harness = await startHarness();
    const { client, clock } = harness;
    const cmd = command(clock, { commandType: CommandType.COMMAND_OPTIMIZER });
    await apply(client, cmd);
    await expectStatus(apply(client, cmd), status.PERMISSION_DENIED, /^nonce_replayed/);
  });

  it("without a secret every command is refused with FAILED_PRECONDITION verifier_unavailable", async () => {
    harness = await startHarness({ ESPER_LEYLINE_SECRET: "" });
    const { client, clock } = harness;
    await expectStatus(apply(client, germinate(clock, "s")), status.FAILED_PRECONDITION, /^verifier_unavailable/);
    await call(client, client.finalizeStep, {});
    const rejected = eventsOf(await drain(client)).filter((e) => e.description === "command_rejected");
    expect(rejected.map((e) => e.attributes)).toEqual([{ reason: "verifier_unavailable" }]);
  });
});

describe("commands over gRPC", () => {
  it("a breaker command forces the kernel breaker and reports it on the global queue", async () => {
    harness = await startHarness();
    const { client, clock } = harness;
    const response = await apply(client, breakerCommand(clock, CircuitBreakerState.CIRCUIT_STATE_OPEN, "maintenance"));
    expect(response.seed).toBeUndefined();
    expect(response.events[0]).toMatchObject({
      description: "breaker_event",
      attributes: { seed_id: "kasmina", breaker_state: "CIRCUIT_STATE_OPEN", action: "forced", reason: "maintenance" },
    });
    expect((await call(client, client.getStatus, {})).kernelBreaker).toBe(CircuitBreakerState.CIRCUIT_STATE_OPEN);
    const invalid = await apply(client, breakerCommand(clock, CircuitBreakerState.CIRCUIT_STATE_UNKNOWN));
    expect(invalid.events[0]).toMatchObject({
      description: "breaker_command_invalid",
      attributes: { desired_state: "0", error: "Unsupported circuit breaker state: 0" },
    });
  });

  it("an emergency command flushes its CRITICAL global event at once", async () => {
    harness = await startHarness();
    const { client, clock } = harness;
    const response = await apply(client, command(clock, { commandType: CommandType.COMMAND_EMERGENCY }));
    expect(response.events[0]).toMatchObject({ description: "emergency_cleanup", level: TelemetryLevel.TELEMETRY_LEVEL_CRITICAL });
    const packets = await drain(client);
    expect(packets).toHaveLength(1);
    expect(packets[0]?.systemHealth?.indicators.get("priority")).toBe("MESSAGE_PRIORITY_CRITICAL");
  });

  it.each([CommandType.COMMAND_ROLLBACK, CommandType.COMMAND_STRUCTURAL_PRUNING, CommandType.COMMAND_UNKNOWN])(
    "defined but unsupported command type %s gets unsupported_command",
    async (commandType) => {
      harness = await startHarness();
      const { client, clock } = harness;
      const response = await apply(client, command(clock, { commandType }));
      expect(response.events.map((e) => [e.description, e.level])).toEqual([["unsupported_command", TelemetryLevel.TELEMETRY_LEVEL_WARNING]]);
    },
  );

  it("overflowing one seed's queue through ApplyCommand reports the exact number dropped", async () => {
    harness = await startHarness();
    const { client, clock } = harness;
    await call(client, client.registerHost, { parameters: HOST });
    const first = await apply(client, germinate(clock, "s"));
    let total = first.events.length;
    for (let i = 0; i < 70; i++) total += (await apply(client, seedOp(clock, "s", SeedOperation.SEED_OP_FINE_TUNE))).events.length;
    await call(client, client.finalizeStep, {});
    const [packet] = await drain(client);
    // 63 kept events, one head marker, then the synthesised seed_stage.
    expect(packet?.events).toHaveLength(65);
    expect(packet?.events[0]).toMatchObject({
      description: "seed_queue_dropped",
      level: TelemetryLevel.TELEMETRY_LEVEL_WARNING,
      attributes: { seed_id: "s", dropped: String(total - 63) },
    });
  });

  it("memory_gc reports exactly the entries expired since the last report, through UpdateEpoch", async () => {
    harness = await startHarness();
    const { client, clock, app } = harness;
    await call(client, client.registerHost, { parameters: HOST });
    await apply(client, germinate(clock, "a"));
    await apply(client, germinate(clock, "b"));
    await call(client, client.finalizeStep, { stepIndex: 1n }); // two packets into the telemetry cache
    const kernelEntries = app.manager.memory.kernelCache.size;
    const telemetryEntries = app.manager.memory.telemetryCache.size;
    expect(kernelEntries).toBe(2);
    expect(telemetryEntries).toBe(2);
    clock.advance(301);
    // This command's own cleanup pass purges the expired entries; their counts must not be lost.
    await apply(client, command(clock, { commandType: CommandType.COMMAND_OPTIMIZER }));
    const { gc } = await call(client, client.updateEpoch, { epoch: 10 });
    expect(gc).toMatchObject({ ran: true, kernelCacheExpired: 2n, telemetryCacheExpired: 2n });
    await call(client, client.finalizeStep, {});
    const memoryGc = eventsOf(await drain(client)).find((e) => e.description === "memory_gc");
    expect(memoryGc?.attributes).toEqual({
      kernel_cache_expired: "2",
      telemetry_cache_expired: "2",
      python_gc_collected: "0",
      gc_counter: "1",
      gc_epoch: "10",
    });
  });
});

describe("bad input changes nothing", () => {
  async function snapshot(h: Harness): Promise<string> {
    const seeds = await call(h.client, h.client.exportSeedStates, {});
    const st = await call(h.client, h.client.getStatus, {});
    return JSON.stringify([seeds.seeds.map((s) => [s.seedId, s.stage]), seeds.currentEpoch, st.seeds, h.app.manager.packets.size]);
  }

  it("ApplyCommand: missing command, missing payloads, undefined enum numbers, empty seed id", async () => {
    harness = await startHarness();
    const h = harness;
    await call(h.client, h.client.registerHost, { parameters: HOST });
    await apply(h.client, germinate(h.clock, "s"));
    const before = await snapshot(h);
    await expectStatus(call(h.client, h.client.applyCommand, { command: undefined }), status.INVALID_ARGUMENT, /command is required/);
    await expectStatus(apply(h.client, command(h.clock, { commandType: CommandType.COMMAND_SEED, targetSeedId: "s" })), status.INVALID_ARGUMENT, /needs the seed_operation payload/);
    await expectStatus(apply(h.client, command(h.clock, { commandType: CommandType.COMMAND_CIRCUIT_BREAKER })), status.INVALID_ARGUMENT, /needs the circuit_breaker payload/);
    await expectStatus(apply(h.client, command(h.clock, { commandType: 42 as CommandType })), status.INVALID_ARGUMENT, /command_type 42 is not a defined CommandType/);
    await expectStatus(apply(h.client, seedOp(h.clock, "s", 17 as SeedOperation)), status.INVALID_ARGUMENT, /operation 17 is not a defined SeedOperation/);
    await expectStatus(apply(h.client, breakerCommand(h.clock, 9 as CircuitBreakerState)), status.INVALID_ARGUMENT, /desired_state 9/);
    await expectStatus(apply(h.client, germinate(h.clock, "")), status.INVALID_ARGUMENT, /target_seed_id/);
    await expectStatus(apply(h.client, command(h.clock, { commandType: CommandType.COMMAND_PAUSE })), status.INVALID_ARGUMENT, /target_seed_id/);
    expect(await snapshot(h)).toBe(before);
  });

  it("every other RPC: empty ids, unknown seeds, bad parameter specs, epochs going back", async () => {
    harness = await startHarness();
    const h = harness;
    const c = h.client;
    await call(c, c.updateEpoch, { epoch: 5 });
    const before = await snapshot(h);
    await expectStatus(call(c, c.advanceAlpha, { seedId: "", steps: 1 }), status.INVALID_ARGUMENT, /seed_id must not be empty/);
    await expectStatus(call(c, c.advanceAlpha, { seedId: "ghost", steps: 1 }), status.NOT_FOUND, /ghost/);
    await expectStatus(call(c, c.recordIsolationViolation, { seedId: " " }), status.INVALID_ARGUMENT, /seed_id/);
    await expectStatus(call(c, c.getRollbackPayload, { seedId: "" }), status.INVALID_ARGUMENT, /seed_id/);
    await expectStatus(call(c, c.getRollbackPayload, { seedId: "ghost" }), status.NOT_FOUND, /no rollback record/);
    await expectStatus(call(c, c.registerHost, { parameters: [] }), status.INVALID_ARGUMENT, /at least one/);
    await expectStatus(
      call(c, c.registerHost, { parameters: [HOST[0]!, HOST[0]!] }),
      status.INVALID_ARGUMENT,
      /appears twice/,
    );
    await expectStatus(
      call(c, c.registerTeacher, { parameters: [{ key: "t.w", shape: [4], trainable: true, elementBytes: 0 }], buffers: [] }),
      status.INVALID_ARGUMENT,
      /element_bytes must be > 0/,
    );
    await expectStatus(call(c, c.updateEpoch, { epoch: 4 }), status.FAILED_PRECONDITION, /before the current epoch 5/);
    expect(await snapshot(h)).toBe(before);
  });
});

describe("registration, status and live telemetry", () => {
  it("registers a teacher with its memory estimate and budget", async () => {
    harness = await startHarness();
    const { client } = harness;
    const small = await call(client, client.registerTeacher, {
      parameters: [{ key: "t.w", shape: [1024, 1024], trainable: true, elementBytes: 4 }],
      buffers: [{ key: "t.running_mean", shape: [1024], trainable: false, elementBytes: 4 }],
    });
    expect(small.memoryGb).toBeCloseTo((1024 * 1024 * 4 + 1024 * 4) / 1024 ** 3, 12);
    expect(small).toMatchObject({ budgetGb: 7, overBudget: false });
    const big = await call(client, client.registerTeacher, {
      parameters: [{ key: "t.big", shape: [2048, 1024, 1024], trainable: true, elementBytes: 4 }],
      buffers: [],
    });
    expect(big).toMatchObject({ memoryGb: 8, overBudget: true });
    await call(client, client.finalizeStep, {});
    const teacher = eventsOf(await drain(client)).filter((e) => e.description === "teacher_registered");
    expect(teacher.map((e) => [e.level, e.attributes.get("memory_gb")])).toEqual([
      [TelemetryLevel.TELEMETRY_LEVEL_INFO, "0.00"],
      [TelemetryLevel.TELEMETRY_LEVEL_WARNING, "8.00"],
    ]);
  });

  it("GetStatus reports breakers, caches, version and the isolation backend", async () => {
    harness = await startHarness();
    const { client, clock } = harness;
    await call(client, client.registerHost, { parameters: HOST });
    await apply(client, germinate(clock, "s"));
    const st = await call(client, client.getStatus, {});
    expect(st).toMatchObject({
      seeds: 1,
      currentEpoch: 0,
      kernelBreaker: CircuitBreakerState.CIRCUIT_STATE_CLOSED,
      isolationBreaker: CircuitBreakerState.CIRCUIT_STATE_CLOSED,
      prefetchIssue: "",
      version: "test",
    });
    expect(st.isolationBackend).not.toBe("");
    expect(st.kernelCache?.size).toBe(1n);
    expect(st.gpuCache).toMatchObject({ size: 1n, capacity: 32n });
  });

  it("WatchTelemetry streams packets as they are emitted and ends when the service drains", async () => {
    harness = await startHarness();
    const { client, clock, app } = harness;
    const stream = client.watchTelemetry({});
    const received: WatchTelemetryResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on("data", (m: WatchTelemetryResponse) => received.push(m));
      stream.on("end", () => resolve());
      stream.on("error", reject);
    });
    // Wait until the server has registered the watcher.
    for (let i = 0; i < 100 && app.manager.packets.listenerCount === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(app.manager.packets.listenerCount).toBe(1);
    await apply(client, command(clock, { commandType: CommandType.COMMAND_EMERGENCY }));
    await call(client, client.recordIsolationViolation, { seedId: "x" });
    await call(client, client.finalizeStep, { stepIndex: 1n });
    for (let i = 0; i < 100 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(received.map((r) => r.packet?.packetId)).toEqual(["kasmina-global-0", "kasmina-seed-x-1"]);
    await app.close();
    await ended;
    expect(app.manager.packets.listenerCount).toBe(0);
  });
});
