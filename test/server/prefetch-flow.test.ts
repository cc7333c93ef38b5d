// Germinate → prefetch → ready → graft through the whole service, on the in-process bus and on a
// real redis-server answered by a stand-in Oona responder; spans read back from memory.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Metadata } from "@grpc/grpc-js";
import { SpanStatusCode } from "@opentelemetry/api";
import { Redis } from "ioredis";
import { BusEnvelope, BusMessageType, SeedLifecycleStage as Stage, SeedOperation, TelemetryLevel, type TelemetryEvent } from "../../src/leyline.js";
import { RedisBus } from "../../src/infra/redis-bus.js";
import { PrefetchResponder } from "../../src/prefetch/responder.js";
import { call, healthStatus } from "../support/grpc-clients.js";
import { germinate, seedOp, startHarness, SECRET, type Harness } from "../support/harness.js";
import { RedisServer } from "../support/redis-server.js";
import { recordedTracing, waitUntil } from "../prefetch/helpers.js";

const HOST = [{ key: "host.w", shape: [4], trainable: true, elementBytes: 4 }];

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function stageOf(h: Harness, seedId: string): Promise<Stage | undefined> {
  const { seeds } = await call(h.client, h.client.exportSeedStates, {});
  return seeds.find((s) => s.seedId === seedId)?.stage;
}

describe("prefetch on the in-process bus (KASMINA_BUS=memory)", () => {
  it("germinate waits in GERMINATED, then the ready reply grafts the kernel and the seed trains", async () => {
    const recorded = recordedTracing();
    harness = await startHarness({ KASMINA_BUS: "memory", KASMINA_TRAINING_RUN_ID: "run-7" }, undefined, recorded.tracing);
    const h = harness;
    await call(h.client, h.client.registerHost, { parameters: HOST });
    const response = await call(h.client, h.client.applyCommand, { command: germinate(h.clock, "s") });
    expect(response.seed?.stage).toBe(Stage.SEED_STAGE_GERMINATED);
    const requested = response.events.find((e) => e.description === "prefetch_requested");
    expect(requested?.attributes).toMatchObject({ seed_id: "s", blueprint_id: "BP001" });
    expect(requested?.attributes.get("request_id")).toMatch(/^prefetch-/);
    await waitUntil(async () => (await stageOf(h, "s")) === Stage.SEED_STAGE_TRAINING, "the seed reaches TRAINING");
    await call(h.client, h.client.finalizeStep, {});
    const events = (await call(h.client, h.client.drainTelemetry, { maxPackets: 0 })).packets.flatMap((p) => p.events);
    expect(events.map((e) => e.description)).toEqual(expect.arrayContaining(["prefetch_requested", "prefetch_ready", "gate_event"]));
    const [span] = recorded.spans("kasmina.prefetch.request");
    expect(span?.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(span?.attributes).toMatchObject({ training_run_id: "run-7", blueprint_id: "BP001", seed_id: "s" });
    expect((await call(h.client, h.client.getStatus, {})).prefetchIssue).toBe("");
  });

  it("an error reply culls and embargoes the seed, and the span says why", async () => {
    const recorded = recordedTracing();
    harness = await startHarness({ KASMINA_BUS: "memory", KASMINA_TRAINING_RUN_ID: "run-7" }, undefined, recorded.tracing);
    const h = harness;
    await call(h.client, h.client.registerHost, { parameters: HOST });
    await call(h.client, h.client.applyCommand, { command: germinate(h.clock, "s", "BP_UNKNOWN") });
    await waitUntil(async () => (await stageOf(h, "s")) === Stage.SEED_STAGE_EMBARGOED, "the seed is embargoed");
    await call(h.client, h.client.finalizeStep, {});
    const events = (await call(h.client, h.client.drainTelemetry, { maxPackets: 0 })).packets.flatMap((p) => p.events);
    const error = events.find((e) => e.description === "prefetch_error");
    expect(error).toMatchObject({ level: TelemetryLevel.TELEMETRY_LEVEL_WARNING, attributes: { seed_id: "s", blueprint_id: "BP_UNKNOWN" } });
    expect(error?.attributes.get("reason")).toContain("BP_UNKNOWN");
    const [span] = recorded.spans("kasmina.prefetch.request");
    expect(span?.status).toMatchObject({ code: SpanStatusCode.ERROR });
    expect(span?.status.message).toContain("BP_UNKNOWN");
  });

  it("every call has a run: requests carry the selected run's id and each ready reply reaches the run that asked", async () => {
    const recorded = recordedTracing();
    harness = await startHarness({ KASMINA_BUS: "memory" }, undefined, recorded.tracing);
    const h = harness;
    const inRun = (id: string): Metadata => {
      const metadata = new Metadata();
      metadata.set("kasmina-training-run", id);
      return metadata;
    };
    await call(h.client, h.client.registerHost, { parameters: HOST });
    await call(h.client, h.client.registerHost, { parameters: HOST }, inRun("run-9"));
    // No metadata: the default run (KASMINA_TRAINING_RUN_ID unset ⇒ "default").
    expect((await call(h.client, h.client.applyCommand, { command: germinate(h.clock, "s") })).seed?.stage).toBe(Stage.SEED_STAGE_GERMINATED);
    // The same seed id in another run, with a signed annotation that names that run.
    const annotated = germinate(h.clock, "s", "BP001", { annotations: new Map(Object.entries({ training_run_id: "run-9" })) });
    expect((await call(h.client, h.client.applyCommand, { command: annotated }, inRun("run-9"))).seed?.stage).toBe(Stage.SEED_STAGE_GERMINATED);
    await waitUntil(async () => (await stageOf(h, "s")) === Stage.SEED_STAGE_TRAINING, "the default run's seed reaches TRAINING");
    await waitUntil(
      async () => (await call(h.client, h.client.exportSeedStates, {}, inRun("run-9"))).seeds.find((s) => s.seedId === "s")?.stage === Stage.SEED_STAGE_TRAINING,
      "run-9's seed reaches TRAINING",
    );
    expect(recorded.spans("kasmina.prefetch.request").map((span) => span.attributes["training_run_id"]).sort()).toEqual(["default", "run-9"]);
    expect(h.app.runs.find("run-9")?.manager.pendingPrefetchCount()).toBe(0);
    expect(h.app.manager.pendingPrefetchCount()).toBe(0);
  });

  it("a retired seed drops its outstanding request and a late reply is ignored", async () => {
    harness = await startHarness({ KASMINA_BUS: "memory", KASMINA_TRAINING_RUN_ID: "run-7" });
    const h = harness;
    // Stop the responder so the request stays outstanding.
    await h.app.prefetch?.responder?.close();
    await call(h.client, h.client.applyCommand, { command: germinate(h.clock, "s") });
    expect(h.app.manager.pendingPrefetchCount()).toBe(1);
    await call(h.client, h.client.applyCommand, { command: seedOp(h.clock, "s", SeedOperation.SEED_OP_CULL) });
    expect(h.app.manager.pendingPrefetchCount()).toBe(0);
    expect(await stageOf(h, "s")).toBeUndefined();
  });
});

describe("prefetch on Redis Streams (KASMINA_BUS=redis) against a real redis-server", () => {
  let redis: RedisServer;
  let oona: PrefetchResponder | undefined;
  let oonaBus: RedisBus | undefined;

  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    await redis.stop();
  });
  afterEach(async () => {
    await oona?.close();
    await oonaBus?.close();
    oona = undefined;
    oonaBus = undefined;
  });

  it("grafts through Oona-compatible streams, reports a Redis outage in health and status, and recovers", async () => {
    harness = await startHarness({ KASMINA_BUS: "redis", KASMINA_REDIS_URL: redis.url, KASMINA_TRAINING_RUN_ID: "run-r" });
    const h = harness;
    // A stand-in for Oona on its own connection, signing with the shared secret.
    oonaBus = new RedisBus({ url: redis.url, secret: SECRET });
    oona = new PrefetchResponder({
      bus: oonaBus,
      group: "oona",
      catalog: { lookup: (id) => (id === "BP001" ? { artifactRef: "oona://BP001", checksum: "c" } : undefined) },
    });
    await oona.start();
    await call(h.client, h.client.registerHost, { parameters: HOST });
    await call(h.client, h.client.applyCommand, { command: germinate(h.clock, "s") });
    await waitUntil(async () => (await stageOf(h, "s")) === Stage.SEED_STAGE_TRAINING, "the seed reaches TRAINING over Redis", 10_000);
    expect(await healthStatus(h.server.address)).toBe("SERVING");

    // An unsigned reply (someone without the secret) is acknowledged, dropped and reported.
    const raw = new Redis(redis.url, { lazyConnect: true });
    await raw.connect();
    await raw.xadd("oona.kernels.ready", "*", "payload", Buffer.from(BusEnvelope.encode({ messageType: BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_READY, payload: Buffer.alloc(0), attributes: new Map() }).finish()));
    raw.disconnect();
    let rejected: TelemetryEvent | undefined;
    await waitUntil(async () => {
      await call(h.client, h.client.finalizeStep, {});
      const events = (await call(h.client, h.client.drainTelemetry, { maxPackets: 0 })).packets.flatMap((p) => p.events);
      rejected ??= events.find((e) => e.description === "prefetch_message_rejected");
      return rejected !== undefined;
    }, "the unsigned reply is reported", 10_000);
    expect(rejected?.attributes.get("stream")).toBe("oona.kernels.ready");
    expect(rejected?.attributes.get("reason")).toMatch(/signature/);

    await redis.stop();
    await waitUntil(async () => (await healthStatus(h.server.address)) === "NOT_SERVING", "health turns NOT_SERVING", 10_000);
    expect((await call(h.client, h.client.getStatus, {})).prefetchIssue).not.toBe("");

    await redis.restart();
    await waitUntil(async () => (await healthStatus(h.server.address)) === "SERVING", "health recovers", 15_000);
    expect((await call(h.client, h.client.getStatus, {})).prefetchIssue).toBe("");

    // A clean shutdown raises no alarm.
    await h.app.prefetch?.close();
    expect(h.app.prefetch?.coordinator.pollTaskIssue()).toBeUndefined();
  }, 60_000);
});
