// The built service (`npm start`'s entry point) with its SQLite state file, restarted cleanly and
// killed with SIGKILL (DESIGN §2.2): what a call acknowledged survives, a command is never applied
// twice, and the replay-after-restart hole of issue 11 stays closed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import type { KasminaServiceClient, WatchTelemetryResponse } from "../../generated/esper/kasmina/v1/kasmina.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { CommandType, SeedOperation, type AdaptationCommand, type TelemetryPacket } from "../../src/leyline.js";
import { call, inRun, kasminaClient, refusal } from "../support/grpc-clients.js";
import { command, germinate, SECRET, seedOp } from "../support/harness.js";
import { spawnKasmina, type KasminaProcess } from "../support/process.js";

const HOST = [{ key: "host.w", shape: [4], trainable: true, elementBytes: 4 }];
const processes: KasminaProcess[] = [];
const clients: KasminaServiceClient[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const p of processes.splice(0)) await p.stop("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function statePath(): string {
  const dir = mkdtempSync(join(tmpdir(), "kasmina-durable-"));
  dirs.push(dir);
  return join(dir, "kasmina.db");
}

/** The real wall clock, for commands the real process checks for freshness. */
const now = (): FakeClock => new FakeClock(0, Date.now());

async function start(path: string): Promise<KasminaServiceClient> {
  const proc = spawnKasmina({
    ESPER_LEYLINE_SECRET: SECRET,
    KASMINA_STATE: "sqlite",
    KASMINA_STATE_PATH: path,
    KASMINA_ISOLATION_BACKEND: "js",
    KASMINA_FRESHNESS_WINDOW_SECONDS: "600",
    KASMINA_NONCE_TTL_SECONDS: "1200",
  });
  processes.push(proc);
  const client = kasminaClient(await proc.address());
  clients.push(client);
  return client;
}

async function stopLast(signal: NodeJS.Signals): Promise<void> {
  const proc = processes.pop();
  clients.pop()?.close();
  const exit = await proc?.stop(signal);
  if (signal === "SIGTERM") expect(exit).toEqual({ code: 0, signal: null });
  else expect(exit?.signal).toBe("SIGKILL");
}


describe("restarts of the real process (KASMINA_STATE=sqlite)", () => {
  it("answers ExportSeedStates, GetRollbackPayload, GetStatus and DrainTelemetry the same after a clean restart and after SIGKILL, and refuses replays", async () => {
    const path = statePath();
    let client = await start(path);
    const md = inRun("run-a");
    const watched: TelemetryPacket[] = [];
    const stream = client.watchTelemetry({}, md);
    stream.on("data", (r: WatchTelemetryResponse) => r.packet !== undefined && watched.push(r.packet));
    stream.on("error", () => undefined);
    await new Promise((r) => setTimeout(r, 100)); // the watcher subscribes
    const applied: AdaptationCommand[] = [germinate(now(), "s"), germinate(now(), "gone"), seedOp(now(), "gone", SeedOperation.SEED_OP_CULL)];
    await call(client, client.registerHost, { parameters: HOST }, md);
    for (const cmd of applied) await call(client, client.applyCommand, { command: cmd }, md);
    await call(client, client.updateEpoch, { epoch: 5 }, md);
    await call(client, client.recordIsolationViolation, { seedId: "s" }, md);
    await call(client, client.finalizeStep, { stepIndex: 3n }, md);
    await new Promise((r) => setTimeout(r, 100)); // the watcher receives the flush
    const snapshot = async (c: KasminaServiceClient) => ({
      seeds: await call(c, c.exportSeedStates, {}, md),
      rollback: await call(c, c.getRollbackPayload, { seedId: "gone" }, md),
      status: await call(c, c.getStatus, {}, md),
    });
    const before = await snapshot(client);
    expect(before.seeds.seeds.map((s) => s.seedId)).toEqual(["s"]);
    expect(watched.length).toBeGreaterThan(1);

    await stopLast("SIGTERM");
    client = await start(path);
    expect(await snapshot(client)).toEqual(before);
    await stopLast("SIGKILL");
    client = await start(path);
    expect(await snapshot(client)).toEqual(before);
    // Every packet the watcher saw before the restarts is still unsent, byte for byte, oldest first.
    const drained = await call(client, client.drainTelemetry, { maxPackets: 0 }, md);
    expect(drained.packets).toEqual(watched);
    for (const cmd of applied) {
      const replay = await refusal(call(client, client.applyCommand, { command: cmd }, md));
      expect(replay.code).toBe(status.PERMISSION_DENIED);
      expect(replay.details).toMatch(/^nonce_replayed/);
    }
  });

  it("crash test: clients send signed commands while the server is SIGKILLed at random moments; acknowledged effects survive, none twice, replays refused", async () => {
    const path = statePath();
    const CLIENTS = 4;
    const ROUNDS = 6;
    const sent = new Map<string, AdaptationCommand>();
    const acked = new Set<string>();
    const seen = new Map<string, number>();
    const runOf = (i: number): string => `crash-${i % 2}`;
    const optimizer = (id: string): AdaptationCommand =>
      command(now(), {
        commandId: id,
        commandType: CommandType.COMMAND_OPTIMIZER,
        payload: { $case: "optimizerAdjustment", value: { optimizerId: id, hyperparameters: new Map() } },
      });
    // Reads what each run holds: the optimizer_adjust events of every command it applied.
    const collect = async (client: KasminaServiceClient): Promise<void> => {
      for (const run of [runOf(0), runOf(1)]) {
        await call(client, client.finalizeStep, {}, inRun(run));
        const { packets } = await call(client, client.drainTelemetry, { maxPackets: 0 }, inRun(run));
        for (const e of packets.flatMap((p) => p.events)) {
          if (e.description !== "optimizer_adjust") continue;
          const id = e.attributes.get("optimizer_id") ?? "";
          seen.set(id, (seen.get(id) ?? 0) + 1);
        }
      }
    };
    let serial = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const client = await start(path);
      await collect(client);
      let stop = false;
      const loops = Array.from({ length: CLIENTS }, async (_, i) => {
        while (!stop) {
          serial += 1;
          const id = `crash-${round}-${i}-${serial}`;
          const cmd = optimizer(id);
          sent.set(id, cmd);
          try {
            await call(client, client.applyCommand, { command: cmd }, inRun(runOf(i)));
            acked.add(id);
          } catch {
            return; // the server died under this call: it was never acknowledged
          }
        }
      });
      // A random moment: 100–600 ms of traffic, then SIGKILL while calls are in flight.
      await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 500)));
      await stopLast("SIGKILL");
      stop = true;
      await Promise.all(loops);
    }
    const client = await start(path);
    await collect(client);

    expect(acked.size).toBeGreaterThan(ROUNDS * CLIENTS);
    for (const id of acked) expect(seen.get(id), `acknowledged ${id}`).toBe(1);
    for (const [id, count] of seen) {
      expect(count, `applied ${id}`).toBe(1);
      expect(sent.has(id)).toBe(true);
    }
    // Every command whose effect is present is refused when replayed. Commands the kill caught before
    // their commit were never applied (and never acknowledged): a replay applies them once, the next is refused.
    for (const [id, cmd] of sent) {
      const i = Number(id.split("-")[2]);
      const replay = call(client, client.applyCommand, { command: cmd }, inRun(runOf(i)));
      if (seen.has(id)) {
        expect((await refusal(replay)).details, id).toMatch(/^nonce_replayed/);
      } else {
        expect(acked.has(id)).toBe(false);
        await replay;
        expect((await refusal(call(client, client.applyCommand, { command: cmd }, inRun(runOf(i))))).details).toMatch(/^nonce_replayed/);
      }
    }
  }, 120_000);
});
