// Training runs as tenants (DESIGN §2.1) over real gRPC, run against both state stores: the memory
// store passes the same suite except the cases that restart the service, which need the SQLite file.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata, status } from "@grpc/grpc-js";
import { AggregationTemporality, DataPointType, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { afterEach, describe, expect, it } from "vitest";
import { GradientSide, type KasminaServiceClient, type WatchTelemetryResponse } from "../../generated/esper/kasmina/v1/kasmina.js";
import { OtelMetrics } from "../../src/infra/otel-metrics.js";
import { BreakerState } from "../../src/kasmina/circuit-breaker.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { CircuitBreakerState, CommandType, SeedLifecycleStage as Stage, SeedOperation, type AdaptationCommand } from "../../src/leyline.js";
import { call, inRun, refusal } from "../support/grpc-clients.js";
import { waitUntil } from "../prefetch/helpers.js";
import { breakerCommand, command, germinate, seedOp, startHarness, type Harness } from "../support/harness.js";

const HOST = [{ key: "host.w", shape: [4], trainable: true, elementBytes: 4 }];
const STORES = ["memory", "sqlite"] as const;

let harness: Harness | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function stateEnv(store: (typeof STORES)[number]): Record<string, string> {
  if (store === "memory") return { KASMINA_STATE: "memory" };
  const dir = mkdtempSync(join(tmpdir(), "kasmina-state-"));
  dirs.push(dir);
  return { KASMINA_STATE: "sqlite", KASMINA_STATE_PATH: join(dir, "nested", "kasmina.db") };
}


const apply = (client: KasminaServiceClient, cmd: AdaptationCommand, run?: string) =>
  call(client, client.applyCommand, { command: cmd }, run === undefined ? new Metadata() : inRun(run));

async function drainedEvents(client: KasminaServiceClient, run: string): Promise<string[]> {
  await call(client, client.finalizeStep, {}, inRun(run));
  const { packets } = await call(client, client.drainTelemetry, { maxPackets: 0 }, inRun(run));
  return packets.flatMap((p) => p.events.map((e) => e.description));
}

describe.each(STORES)("training runs (KASMINA_STATE=%s)", (store) => {
  it("two runs with the same seed id stay independent", async () => {
    harness = await startHarness(stateEnv(store));
    const { client, clock } = harness;
    await call(client, client.registerHost, { parameters: HOST }, inRun("run-a"));
    await apply(client, germinate(clock, "s"), "run-a");
    await call(client, client.updateEpoch, { epoch: 4 }, inRun("run-a"));
    await apply(client, seedOp(clock, "s", SeedOperation.SEED_OP_START_GRAFTING), "run-a");

    const a = await call(client, client.exportSeedStates, {}, inRun("run-a"));
    const b = await call(client, client.exportSeedStates, {}, inRun("run-b"));
    expect(a.seeds.map((s) => [s.seedId, s.stage])).toEqual([["s", Stage.SEED_STAGE_BLENDING]]);
    expect(a.currentEpoch).toBe(4);
    expect(b).toEqual({ seeds: [], currentEpoch: 0 });

    // The same id in run-b is a different seed: culling it there leaves run-a's alone.
    await apply(client, germinate(clock, "s"), "run-b");
    await apply(client, seedOp(clock, "s", SeedOperation.SEED_OP_CULL), "run-b");
    expect((await call(client, client.exportSeedStates, {}, inRun("run-b"))).seeds).toEqual([]);
    expect((await call(client, client.exportSeedStates, {}, inRun("run-a"))).seeds.map((s) => s.stage)).toEqual([Stage.SEED_STAGE_BLENDING]);
    expect((await call(client, client.getRollbackPayload, { seedId: "s" }, inRun("run-b"))).payload).toMatchObject({ reason: "retired" });
    expect((await refusal(call(client, client.getRollbackPayload, { seedId: "s" }, inRun("run-a")))).code).toBe(status.NOT_FOUND);

    // Telemetry is per run too.
    expect(await drainedEvents(client, "run-a")).not.toContain("rollback_ready");
    expect(await drainedEvents(client, "run-b")).toContain("rollback_ready");
  });

  it("a command accepted in one run is refused in every other (one nonce ledger)", async () => {
    harness = await startHarness(stateEnv(store));
    const { client, clock } = harness;
    const cmd = germinate(clock, "s");
    await apply(client, cmd, "run-a");
    const replay = await refusal(apply(client, cmd, "run-b"));
    expect(replay.code).toBe(status.PERMISSION_DENIED);
    expect(replay.details).toMatch(/^nonce_replayed/);
    expect((await call(client, client.exportSeedStates, {}, inRun("run-b"))).seeds).toEqual([]);
  });

  it("a signed training_run_id naming another run is refused with training_run_mismatch, reported in the selected run", async () => {
    harness = await startHarness(stateEnv(store));
    const { client, clock } = harness;
    const cmd = germinate(clock, "s", "BP001", { annotations: new Map(Object.entries({ training_run_id: "run-b" })) });
    const refused = await refusal(apply(client, cmd, "run-a"));
    expect(refused.code).toBe(status.PERMISSION_DENIED);
    expect(refused.details).toMatch(/^training_run_mismatch/);
    expect((await call(client, client.exportSeedStates, {}, inRun("run-a"))).seeds).toEqual([]);
    expect(await drainedEvents(client, "run-a")).toContain("command_rejected");
    expect(await drainedEvents(client, "run-b")).not.toContain("command_rejected");
    // Signed for the run it is sent to: accepted.
    const matching = germinate(clock, "s", "BP001", { annotations: new Map(Object.entries({ training_run_id: "run-b" })) });
    expect((await apply(client, matching, "run-b")).seed?.stage).toBe(Stage.SEED_STAGE_TRAINING);
  });

  it("a malformed kasmina-training-run is INVALID_ARGUMENT naming the key; no metadata selects KASMINA_TRAINING_RUN_ID", async () => {
    harness = await startHarness({ ...stateEnv(store), KASMINA_TRAINING_RUN_ID: "main-run" });
    const { client } = harness;
    for (const bad of ["has space", "x".repeat(129), "slash/run"]) {
      const error = await refusal(call(client, client.getStatus, {}, inRun(bad)));
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toContain("kasmina-training-run");
    }
    const statusReply = await call(client, client.getStatus, {});
    expect(statusReply).toMatchObject({ trainingRun: "main-run", trainingRuns: 1 });
    expect(statusReply.stateStore).toBe(store === "memory" ? "memory" : `sqlite:${harness.config.statePath}`);
    expect((await call(client, client.getStatus, {}, inRun("x.y:z-1_2"))).trainingRun).toBe("x.y:z-1_2");
  });

  it("RESOURCE_EXHAUSTED for a call that would create one run more than KASMINA_MAX_TRAINING_RUNS; closing one frees a slot", async () => {
    harness = await startHarness({ ...stateEnv(store), KASMINA_MAX_TRAINING_RUNS: "2" });
    const { client, clock } = harness;
    await apply(client, germinate(clock, "s"), "run-a");
    await call(client, client.getStatus, {}, inRun("run-b"));
    const cmd = germinate(clock, "s");
    const full = await refusal(apply(client, cmd, "run-c"));
    expect(full.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(full.details).toContain("KASMINA_MAX_TRAINING_RUNS");
    // Existing runs still answer; the refused call spent nothing (its command is still fresh and unused).
    expect((await call(client, client.getStatus, {}, inRun("run-a"))).trainingRuns).toBe(2);
    expect(await call(client, client.closeTrainingRun, { trainingRunId: "run-b" })).toEqual({ seedsRetired: 0 });
    expect((await apply(client, cmd, "run-c")).seed?.stage).toBe(Stage.SEED_STAGE_TRAINING);
  });

  it("ListTrainingRuns summarises each run; CloseTrainingRun retires its seeds, ends its watchers and deletes its state", async () => {
    harness = await startHarness(stateEnv(store));
    const { client, clock } = harness;
    await call(client, client.registerHost, { parameters: HOST }, inRun("run-a"));
    await apply(client, germinate(clock, "s1"), "run-a");
    await apply(client, germinate(clock, "s2"), "run-a");
    await call(client, client.recordIsolationViolation, { seedId: "s1" }, inRun("run-a"));
    await call(client, client.updateEpoch, { epoch: 3 }, inRun("run-a"));
    await apply(client, germinate(clock, "t"), "run-b");
    const { runs } = await call(client, client.listTrainingRuns, {});
    expect(runs.map((r) => [r.trainingRunId, r.seeds, r.currentEpoch, r.violations, r.isolationBreaker])).toEqual([
      ["run-a", 2, 3, 1, CircuitBreakerState.CIRCUIT_STATE_CLOSED],
      ["run-b", 1, 0, 0, CircuitBreakerState.CIRCUIT_STATE_CLOSED],
    ]);
    expect(Number(runs[0]?.lastActivityUnixMs)).toBe(clock.wallMs());

    // A watcher of run-a sees the retirements and then its stream ends.
    const received: WatchTelemetryResponse[] = [];
    const stream = client.watchTelemetry({}, inRun("run-a"));
    stream.on("data", (r: WatchTelemetryResponse) => received.push(r));
    const ended = new Promise<void>((resolve) => stream.on("end", () => resolve()));
    for (let i = 0; i < 100 && (harness.app.runs.find("run-a")?.manager.packets.listenerCount ?? 0) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await call(client, client.closeTrainingRun, { trainingRunId: "run-a" })).toEqual({ seedsRetired: 2 });
    await ended;
    expect(received.flatMap((r) => r.packet?.events.map((e) => e.description) ?? [])).toContain("rollback_ready");
    expect((await call(client, client.listTrainingRuns, {})).runs.map((r) => r.trainingRunId)).toEqual(["run-b"]);
    const unknown = await refusal(call(client, client.closeTrainingRun, { trainingRunId: "run-a" }));
    expect(unknown.code).toBe(status.NOT_FOUND);
    expect((await refusal(call(client, client.closeTrainingRun, { trainingRunId: "" }))).code).toBe(status.INVALID_ARGUMENT);
    // A later call starts run-a afresh.
    expect(await call(client, client.exportSeedStates, {}, inRun("run-a"))).toEqual({ seeds: [], currentEpoch: 0 });
  });

  it("records kasmina.state.writes, one point per committed transaction", async () => {
    const reader = new (class extends MetricReader {
      constructor() {
        super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
      }
      protected override async onShutdown(): Promise<void> {}
      protected override async onForceFlush(): Promise<void> {}
    })();
    const provider = new MeterProvider({ readers: [reader] });
    harness = await startHarness(stateEnv(store), new OtelMetrics(provider.getMeter("kasmina-test")));
    const { client, clock } = harness;
    // Eight concurrent commands: group commit may put several in one transaction, never one in two.
    await Promise.all(Array.from({ length: 8 }, (_, i) => apply(client, germinate(clock, `s${i}`))));
    const { resourceMetrics } = await reader.collect();
    const writes = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === "kasmina.state.writes");
    expect(writes?.dataPointType).toBe(DataPointType.HISTOGRAM);
    expect(writes?.descriptor.unit).toBe("s");
    const point = writes?.dataPoints[0];
    expect(point?.attributes).toEqual({ "kasmina.state.store": store });
    const count = (point?.value as { count: number } | undefined)?.count ?? 0;
    expect(count).toBeGreaterThanOrEqual(1);
    expect(count).toBeLessThanOrEqual(8);
    await provider.shutdown();
  });
});

describe("restart in process (KASMINA_STATE=sqlite): what a restart keeps and what it cannot", () => {
  async function restart(h: Harness, extra: Record<string, string> = {}): Promise<Harness> {
    await h.close();
    // A new process: another monotonic origin, the same wall clock.
    return startHarness({ KASMINA_STATE: "sqlite", KASMINA_STATE_PATH: h.config.statePath, ...extra }, undefined, undefined, new FakeClock(5000, h.clock.wall));
  }

  it("an embargo and an open breaker keep running on wall-clock deadlines across a restart", async () => {
    const env = stateEnv("sqlite");
    const dir = mkdtempSync(join(tmpdir(), "kasmina-catalog-"));
    dirs.push(dir);
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
    const settings = { ...env, KASMINA_LIFECYCLE_PACING: "immediate", KASMINA_BLUEPRINT_CATALOG: catalog };
    harness = await startHarness(settings);
    let { client, clock } = harness;
    await call(client, client.registerHost, { parameters: HOST });
    expect((await apply(client, germinate(clock, "s", "BP_SLOW"))).seed?.stage).toBe(Stage.SEED_STAGE_EMBARGOED);
    await apply(client, breakerCommand(clock, CircuitBreakerState.CIRCUIT_STATE_OPEN, "maintenance"));
    clock.advance(10);

    harness = await restart(harness, settings);
    ({ client, clock } = harness);
    expect((await call(client, client.getStatus, {})).kernelBreaker).toBe(BreakerState.OPEN);
    // 10 of the 30 embargo seconds passed before the restart: 20 remain.
    const embargoed = await apply(client, germinate(clock, "s"));
    const event = embargoed.events.find((e) => e.description === "seed_embargoed");
    expect(Number(event?.attributes.get("remaining_s"))).toBeCloseTo(20, 3);
    clock.advance(21);
    // Embargo over: the germinate is no longer refused as embargoed.
    expect((await apply(client, germinate(clock, "s"))).events.map((e) => e.description)).not.toContain("seed_embargoed");
    // The breaker (60 s from its opening, 31 s ago) still denies a kernel fetch.
    const denied = await apply(client, germinate(clock, "t"));
    expect(denied.events.find((e) => e.description === "gate_failure")?.attributes.get("reason")).toBe("breaker_denied");
    harness = await restart(harness, settings);
    ({ client, clock } = harness);
    clock.advance(30);
    // The cool-down ran out across the second restart: the breaker lets the trial call through.
    expect((await apply(client, germinate(clock, "u", "BP001"))).seed?.stage).toBe(Stage.SEED_STAGE_PROBATIONARY);
    expect((await call(client, client.getStatus, {})).kernelBreaker).toBe(BreakerState.HALF_OPEN);
  });

  it("keeps seeds, rollback records, registrations, epoch, breakers, queued events, packets and the nonce ledger; not accumulators, a pass in flight or watch streams", async () => {
    harness = await startHarness(stateEnv("sqlite"));
    const { clock } = harness;
    let { client } = harness;
    await call(client, client.registerHost, { parameters: HOST }, inRun("run-a"));
    const accepted = germinate(clock, "s");
    await apply(client, accepted, "run-a");
    await apply(client, germinate(clock, "gone"), "run-a");
    await apply(client, seedOp(clock, "gone", SeedOperation.SEED_OP_CULL), "run-a");
    await call(client, client.updateEpoch, { epoch: 12 }, inRun("run-a"));
    await call(client, client.recordIsolationViolation, { seedId: "s" }, inRun("run-a"));
    await call(client, client.finalizeStep, { stepIndex: 7n }, inRun("run-a"));
    await apply(client, command(clock, { commandType: CommandType.COMMAND_OPTIMIZER, payload: { $case: "optimizerAdjustment", value: { optimizerId: "adam", hyperparameters: new Map() } } }), "run-a");
    // A backward pass in flight (one chunk sent, the stream not ended): never acknowledged, so not kept.
    const pass = client.reportGradients(inRun("run-a"), () => undefined);
    pass.write({ seedId: "s", paramKey: "host.w", side: GradientSide.GRADIENT_SIDE_HOST, numel: 4n, offset: 0n, values: Buffer.from(new Float32Array([1, 2, 3, 4]).buffer) });
    const stream = client.watchTelemetry({}, inRun("run-a"));
    stream.on("data", () => undefined);
    const streamEnded = new Promise<void>((resolve) => {
      stream.on("end", () => resolve());
      stream.on("error", () => resolve());
    });
    const before = {
      seeds: await call(client, client.exportSeedStates, {}, inRun("run-a")),
      rollback: await call(client, client.getRollbackPayload, { seedId: "gone" }, inRun("run-a")),
      status: await call(client, client.getStatus, {}, inRun("run-a")),
      runs: await call(client, client.listTrainingRuns, {}),
    };

    harness = await restart(harness);
    ({ client } = harness);
    await streamEnded; // open watch streams do not survive a restart
    expect(await call(client, client.exportSeedStates, {}, inRun("run-a"))).toEqual(before.seeds);
    expect(await call(client, client.getRollbackPayload, { seedId: "gone" }, inRun("run-a"))).toEqual(before.rollback);
    expect(await call(client, client.getStatus, {}, inRun("run-a"))).toEqual(before.status);
    expect(await call(client, client.listTrainingRuns, {})).toEqual(before.runs);
    // The replay of a command applied before the restart is refused, in any run.
    expect((await refusal(apply(client, accepted, "run-a"))).details).toMatch(/^nonce_replayed/);
    expect((await refusal(apply(client, accepted, "run-b"))).details).toMatch(/^nonce_replayed/);
    // The queued optimizer event and the packets flushed before the restart are all still there.
    const events = await drainedEvents(client, "run-a");
    expect(events).toEqual(expect.arrayContaining(["seed_operation", "violation_recorded", "optimizer_adjust"]));
    // Isolation accumulators are not durable, nor is the pass that was in flight: the session
    // re-opens at zero for the collecting seed.
    const stats = await call(client, client.getIsolationStats, { seedId: "s" }, inRun("run-a"));
    expect(stats.report).toMatchObject({ collecting: true, elementsProcessed: 0n, hostNorm: 0, seedViolations: 1 });
  });

  it("a newer clock never resurrects an expired nonce: the ledger forgets entries only after their expiry", async () => {
    harness = await startHarness({ ...stateEnv("sqlite"), KASMINA_FRESHNESS_WINDOW_SECONDS: "600", KASMINA_NONCE_TTL_SECONDS: "900" });
    let { client } = harness;
    const clock0 = new FakeClock(0, harness.clock.wall);
    const cmd = germinate(clock0, "s");
    await apply(client, cmd);
    harness = await restart(harness, { KASMINA_FRESHNESS_WINDOW_SECONDS: "600", KASMINA_NONCE_TTL_SECONDS: "900" });
    ({ client } = harness);
    harness.clock.advance(590); // still fresh, and the ledger entry (900 s) still live after the restart
    expect((await refusal(apply(client, cmd))).details).toMatch(/^nonce_replayed/);
  });

  it("a prefetch request outstanding at a restart is published again and its reply grafts the seed", async () => {
    const settings = { ...stateEnv("sqlite"), KASMINA_BUS: "memory" };
    harness = await startHarness(settings);
    await harness.app.prefetch?.responder?.close(); // nobody answers: the request stays outstanding
    expect((await apply(harness.client, germinate(harness.clock, "s"), "run-a")).seed?.stage).toBe(Stage.SEED_STAGE_GERMINATED);
    expect(harness.app.runs.find("run-a")?.manager.pendingPrefetchCount()).toBe(1);
    harness = await restart(harness, settings);
    const h = harness;
    await waitUntil(
      async () => (await call(h.client, h.client.exportSeedStates, {}, inRun("run-a"))).seeds[0]?.stage === Stage.SEED_STAGE_TRAINING,
      "the re-published request is answered and the seed trains",
    );
    expect(h.app.runs.find("run-a")?.manager.pendingPrefetchCount()).toBe(0);
  });

  it("a write the store refuses answers UNAVAILABLE (never an acknowledgement memory alone holds)", async () => {
    harness = await startHarness(stateEnv("sqlite"));
    await harness.app.store.close();
    const error = await refusal(apply(harness.client, germinate(harness.clock, "s")));
    expect(error.code).toBe(status.UNAVAILABLE);
    expect(error.details).toContain("state store could not commit");
  });
});
