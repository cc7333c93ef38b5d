// Redis stopped (SIGKILL) and restarted on the same port while commands flow through the real
// process (KASMINA_BUS=redis, a stand-in Oona responder on its own connection): every call gets a
// considered status, commands that do not need the bus keep succeeding during the outage, health
// reports the outage and recovers, a germinate after the restart grafts over Redis again, and the
// process exits 0.
import { status as Status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KasminaServiceClient } from "../../generated/esper/kasmina/v1/kasmina.js";
import { RedisBus } from "../../src/infra/redis-bus.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { CommandType, SeedLifecycleStage as Stage } from "../../src/leyline.js";
import { PrefetchResponder } from "../../src/prefetch/responder.js";
import { call, healthStatus, kasminaClient } from "../support/grpc-clients.js";
import { command, germinate, SECRET } from "../support/harness.js";
import { spawnKasmina, type KasminaProcess } from "../support/process.js";
import { RedisServer } from "../support/redis-server.js";
import { waitUntil } from "../prefetch/helpers.js";

let redis: RedisServer;
let kasmina: KasminaProcess;
let oonaBus: RedisBus;
let oona: PrefetchResponder;
let client: KasminaServiceClient;
let address: string;
const clock = new FakeClock(0, Date.now());

beforeAll(async () => {
  redis = await RedisServer.start();
  oonaBus = new RedisBus({ url: redis.url, secret: SECRET, reconnectInitialMs: 20, reconnectMaxMs: 200 });
  oona = new PrefetchResponder({
    bus: oonaBus,
    group: "oona",
    catalog: { lookup: (id) => (id === "BP001" ? { artifactRef: "oona://BP001", checksum: "c" } : undefined) },
  });
  await oona.start();
  kasmina = spawnKasmina({ ESPER_LEYLINE_SECRET: SECRET, KASMINA_BUS: "redis", KASMINA_REDIS_URL: redis.url, KASMINA_TRAINING_RUN_ID: "run-outage" });
  address = await kasmina.address();
  client = kasminaClient(address);
  await call(client, client.registerHost, { parameters: [{ key: "host.w", shape: [4], trainable: true, elementBytes: 4 }] });
});

afterAll(async () => {
  client?.close();
  await oona?.close();
  await oonaBus?.close();
  await redis?.stop();
  await kasmina?.stop("SIGKILL");
});

async function stageOf(seedId: string): Promise<Stage | undefined> {
  const { seeds } = await call(client, client.exportSeedStates, {});
  return seeds.find((s) => s.seedId === seedId)?.stage;
}

/** Commands that need no bus, a step flush and a drain, over and over until stopped; codes tallied by phase. */
function commandFlow(): { phase: string; tally: Map<string, number>; stop: () => Promise<void> } {
  const state = { phase: "before", tally: new Map<string, number>(), stop: async () => undefined };
  let running = true;
  const record = (code: number): void => {
    const key = `${state.phase} ${Status[code]}`;
    state.tally.set(key, (state.tally.get(key) ?? 0) + 1);
  };
  const settle = (p: Promise<unknown>): Promise<void> =>
    p.then(
      () => record(Status.OK),
      (error: ServiceError) => record(error.code),
    );
  const loop = (async () => {
    for (let step = 0; running; step++) {
      await settle(call(client, client.applyCommand, { command: command(clock, { commandType: CommandType.COMMAND_OPTIMIZER, payload: { $case: "optimizerAdjustment", value: { optimizerId: "adam", hyperparameters: new Map([["lr", 0.001]]) } } }) }));
      await settle(call(client, client.finalizeStep, { stepIndex: BigInt(step) }));
      await settle(call(client, client.drainTelemetry, { maxPackets: 0 }));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  state.stop = async () => {
    running = false;
    await loop;
  };
  return state;
}

describe("Redis stopped and restarted while commands flow", () => {
  it("keeps answering, reports the outage in health, recovers, and grafts over Redis again", async () => {
    const flow = commandFlow();
    await call(client, client.applyCommand, { command: germinate(clock, "before") });
    await waitUntil(async () => (await stageOf("before")) === Stage.SEED_STAGE_TRAINING, "a seed grafts over Redis before the outage", 10_000);
    expect(await healthStatus(address)).toBe("SERVING");

    flow.phase = "outage";
    await redis.stop();
    await waitUntil(async () => (await healthStatus(address)) === "NOT_SERVING", "health turns NOT_SERVING during the outage", 10_000);
    expect((await call(client, client.getStatus, {})).prefetchIssue).not.toBe("");
    // A germinate during the outage is answered (its prefetch cannot be published).
    const during = await call(client, client.applyCommand, { command: germinate(clock, "during") }).then(
      (r) => ({ code: Status.OK, stage: r.seed?.stage }),
      (e: ServiceError) => ({ code: e.code, stage: undefined }),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));

    flow.phase = "after";
    await redis.restart();
    await waitUntil(async () => (await healthStatus(address)) === "SERVING", "health recovers after the restart", 20_000);
    expect((await call(client, client.getStatus, {})).prefetchIssue).toBe("");
    await call(client, client.applyCommand, { command: germinate(clock, "after") });
    await waitUntil(async () => (await stageOf("after")) === Stage.SEED_STAGE_TRAINING, "a seed grafts over Redis after the restart", 15_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await flow.stop();

    const tally = Object.fromEntries(flow.tally);
    const duringNow = await stageOf("during");
    console.log(`redis outage: germinate during the outage → ${Status[during.code]} (stage ${during.stage === undefined ? "-" : Stage[during.stage]}, after recovery ${duringNow === undefined ? "-" : Stage[duringNow]}); calls by phase ${JSON.stringify(tally)}`);
    // Only OK: the commands in flight need no bus, so the outage must not fail them.
    for (const key of Object.keys(tally)) expect(key).toMatch(/ OK$/);
    for (const phase of ["before", "outage", "after"]) expect(tally[`${phase} OK`] ?? 0).toBeGreaterThan(0);
    expect([Status.OK, Status.UNAVAILABLE]).toContain(during.code);
    expect(kasmina.child.exitCode).toBeNull();
    expect((await kasmina.stop()).code).toBe(0);
  }, 90_000);
});
