// Mixed load: 8 concurrent clients (on a worker thread, as trainers run in their own processes)
// each run a schedule of ApplyCommand, FinalizeStep, UpdateEpoch, ReportGradients and
// ReportGradientSketch for a fixed
// total count, against Kasmina and, in the same run, against a bare grpc-js server whose handlers
// do nothing (same paths, same bytes). Prints throughput, p50/p99 per RPC, errors (must be 0), the
// ratio to the bare server, and the service's RSS growth per 100k calls after a warm-up.
//
//   npm run bench:load                 BENCH_CALLS (100000), BENCH_CLIENTS (8)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata, Server, ServerCredentials, type ServerReadableStream } from "@grpc/grpc-js";
import { runLoad, type MixJob, type MixOp, type MixResult } from "./load-worker.js";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { signCommand } from "../src/kasmina/command-verifier.js";
import { noopMetrics } from "../src/kasmina/ports.js";
import { AdaptationCommand, CommandType, SeedOperation } from "../src/leyline.js";
import { FLOW_CONTROL_WINDOW, startServer, widenFlowControlWindow } from "../src/server/server.js";
import {
  ApplyCommandRequest,
  FinalizeStepRequest,
  GradientSide,
  KasminaServiceService as S,
  ReportGradientSketchRequest,
  ReportGradientsRequest,
  UpdateEpochRequest,
} from "../generated/esper/kasmina/v1/kasmina.js";

const SECRET = "bench-secret";
const CALLS = Number(process.env["BENCH_CALLS"] ?? 100_000);
const CLIENTS = Number(process.env["BENCH_CLIENTS"] ?? 8);
const WARMUP = Math.max(2_000, Math.floor(CALLS / 10));
const PASS_PARAMS = 4; // per side
const PASS_NUMEL = 4096; // float32 per parameter: a 128 KiB pass in 2 chunks per parameter

type Input = Uint8Array | Uint8Array[];
const seedOf = (client: number): string => `load-seed-${client}`;

let commandSequence = 0;
/** Unique, signed commands (signing is the client's cost, not the server's); none creates state. */
function commands(client: number, n: number): Input[] {
  const now = BigInt(Math.floor(Date.now() / 1000));
  return Array.from({ length: n }, (_, i) => {
    commandSequence += 1;
    const fineTune = i % 2 === 0;
    const payload: AdaptationCommand["payload"] = fineTune
      ? { $case: "seedOperation", value: { operation: SeedOperation.SEED_OP_FINE_TUNE, blueprintId: "", parameters: new Map() } }
      : { $case: "optimizerAdjustment", value: { optimizerId: "adam", hyperparameters: new Map([["lr", 0.001]]) } };
    const cmd = AdaptationCommand.fromPartial({
      version: 1,
      commandId: `load-${process.pid}-${commandSequence}`,
      commandType: fineTune ? CommandType.COMMAND_SEED : CommandType.COMMAND_OPTIMIZER,
      targetSeedId: fineTune ? seedOf(client) : "",
      issuedAt: { seconds: now, nanos: 0 },
      issuedBy: "bench",
    });
    cmd.payload = payload;
    cmd.annotations.set("signature", signCommand(cmd, SECRET));
    return ApplyCommandRequest.encode({ command: cmd }).finish();
  });
}

/** One whole pass for the client's own seed (one stream per seed at a time). */
function gradientPass(client: number): Input[] {
  const chunks: Uint8Array[] = [];
  const half = PASS_NUMEL / 2;
  for (const side of [GradientSide.GRADIENT_SIDE_HOST, GradientSide.GRADIENT_SIDE_SEED]) {
    for (let p = 0; p < PASS_PARAMS; p++) {
      for (let offset = 0; offset < PASS_NUMEL; offset += half) {
        const values = Float32Array.from({ length: half }, (_, i) => Math.sin(p + offset + i) * 1e-3);
        chunks.push(
          ReportGradientsRequest.encode({ seedId: seedOf(client), paramKey: `${side}.p${p}`, side, numel: BigInt(PASS_NUMEL), offset: BigInt(offset), values: Buffer.from(values.buffer) }).finish(),
        );
      }
    }
  }
  return [chunks];
}

/** The values gradientPass sends for one parameter (so a sketch describes the same gradients). */
function passValues(p: number): Float32Array {
  const values = new Float32Array(PASS_NUMEL);
  for (let offset = 0; offset < PASS_NUMEL; offset += PASS_NUMEL / 2) {
    for (let i = 0; i < PASS_NUMEL / 2; i++) values[offset + i] = Math.fround(Math.sin(p + offset + i) * 1e-3);
  }
  return values;
}

/** Per client seed: the service's projection indices per parameter key (filled by GetProjection at set-up). */
const projections = new Map<number, Map<string, number[]>>();

/** One ReportGradientSketch pass: Σg² and g at the service's indices, for the same gradients as gradientPass. */
function sketch(client: number): Input[] {
  const sketches = [GradientSide.GRADIENT_SIDE_HOST, GradientSide.GRADIENT_SIDE_SEED].flatMap((side) =>
    Array.from({ length: PASS_PARAMS }, (_, p) => {
      const values = passValues(p);
      const indices = projections.get(client)?.get(`${side}.p${p}`) ?? [];
      return {
        paramKey: `${side}.p${p}`,
        side,
        numel: BigInt(PASS_NUMEL),
        sumSquares: values.reduce((n, v) => n + v * v, 0),
        sampledValues: Buffer.from(Float32Array.from(indices, (i) => values[i] ?? 0).buffer),
      };
    }),
  );
  return [ReportGradientSketchRequest.encode({ seedId: seedOf(client), sketches }).finish()];
}

interface MixEntry extends MixOp {
  /** Calls of this RPC in every `totalWeight` calls. */
  weight: number;
  /** Inputs for one client that will make `n` calls of it (reused round-robin when fewer). */
  inputs: (client: number, n: number) => Input[];
}

// The mix: adding an RPC is one line.
const MIX: MixEntry[] = [
  { name: "ApplyCommand", path: S.applyCommand.path, stream: false, weight: 4, inputs: commands },
  { name: "FinalizeStep", path: S.finalizeStep.path, stream: false, weight: 2, inputs: (_c, n) => Array.from({ length: Math.min(n, 1000) }, (_, i) => FinalizeStepRequest.encode({ stepIndex: BigInt(i) }).finish()) },
  // One run is shared by every client here, so the epoch stays put (a smaller one would be refused).
  { name: "UpdateEpoch", path: S.updateEpoch.path, stream: false, weight: 1, inputs: () => [UpdateEpochRequest.encode({ epoch: 1 }).finish()] },
  { name: "ReportGradients", path: S.reportGradients.path, stream: true, weight: 1, inputs: gradientPass },
  { name: "ReportGradientSketch", path: S.reportGradientSketch.path, stream: false, weight: 1, inputs: sketch },
];

function job(address: string, count: number): MixJob {
  const totalWeight = MIX.reduce((n, m) => n + m.weight, 0);
  const perClient = Math.ceil(count / CLIENTS);
  return {
    kind: "mix",
    address,
    ops: MIX.map(({ name, path, stream }) => ({ name, path, stream })),
    schedule: MIX.flatMap((m, i) => Array.from({ length: m.weight }, () => i)),
    clients: Array.from({ length: CLIENTS }, (_, c) => Object.fromEntries(MIX.map((m) => [m.name, m.inputs(c, Math.ceil((perClient * m.weight) / totalWeight) + m.weight)]))),
    count,
  };
}

async function bareServer(): Promise<{ address: string; stop: () => Promise<void> }> {
  const server = new Server({ "grpc.max_receive_message_length": 64 << 20 });
  const raw = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
  const definition = Object.fromEntries(MIX.map((m) => [m.name, { path: m.path, requestStream: m.stream, responseStream: false, ...raw }]));
  const handlers = Object.fromEntries(
    MIX.map((m) => [
      m.name,
      m.stream
        ? (call: ServerReadableStream<Buffer, Buffer>, callback: (e: null, r: Buffer) => void) => {
            call.on("data", () => undefined);
            call.on("end", () => callback(null, Buffer.alloc(0)));
          }
        : (_call: unknown, callback: (e: null, r: Buffer) => void) => callback(null, Buffer.alloc(0)),
    ]),
  );
  server.addService(definition, handlers);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  widenFlowControlWindow(server, FLOW_CONTROL_WINDOW, console.error);
  return { address: `127.0.0.1:${port}`, stop: () => new Promise((r) => server.tryShutdown(() => r())) };
}

const gc = (globalThis as { gc?: () => void }).gc;
function rssMiB(): number {
  gc?.();
  return process.memoryUsage.rss() / (1 << 20);
}

async function main(): Promise<void> {
  // Pre-signed commands must stay fresh for the whole run, and the ledger must outlive the window.
  // The store is the default one (SQLite, every acknowledged call durable) in a throwaway file;
  // BENCH_STATE=memory measures the same mix without durability.
  const stateDir = mkdtempSync(join(tmpdir(), "kasmina-bench-load-"));
  const config = loadConfig({
    ESPER_LEYLINE_SECRET: SECRET,
    KASMINA_PORT: "0",
    KASMINA_FRESHNESS_WINDOW_SECONDS: "3600",
    KASMINA_NONCE_TTL_SECONDS: "3700",
    KASMINA_STATE: process.env["BENCH_STATE"] ?? "sqlite",
    KASMINA_STATE_PATH: join(stateDir, "kasmina.db"),
  });
  const log = (): void => undefined;

  const bare = await bareServer();
  const bareResult = await runLoad<MixResult>(job(bare.address, CALLS));
  await bare.stop();

  const app = await createApp(config, { metrics: noopMetrics, log, version: "bench" });
  const server = await startServer({ config, api: app.api, metrics: noopMetrics, log });
  const ctx = { method: "bench", metadata: new Metadata(), signal: new AbortController().signal };
  await app.api.registerHost({ parameters: Array.from({ length: PASS_PARAMS }, (_, p) => ({ key: `${GradientSide.GRADIENT_SIDE_HOST}.p${p}`, shape: [PASS_NUMEL], trainable: true, elementBytes: 4 })) }, ctx);
  for (let c = 0; c < CLIENTS; c++) {
    const cmd = AdaptationCommand.fromPartial({
      version: 1,
      commandId: `load-setup-${process.pid}-${c}`,
      commandType: CommandType.COMMAND_SEED,
      targetSeedId: seedOf(c),
      issuedAt: { seconds: BigInt(Math.floor(Date.now() / 1000)), nanos: 0 },
      payload: { $case: "seedOperation", value: { operation: SeedOperation.SEED_OP_GERMINATE, blueprintId: "BP001", parameters: new Map() } },
    });
    cmd.annotations.set("signature", signCommand(cmd, SECRET));
    await app.api.applyCommand({ command: cmd }, ctx);
    const keys = [GradientSide.GRADIENT_SIDE_HOST, GradientSide.GRADIENT_SIDE_SEED].flatMap((side) => Array.from({ length: PASS_PARAMS }, (_, p) => `${side}.p${p}`));
    const { projections: got } = await app.api.getProjection({ seedId: seedOf(c), parameters: keys.map((paramKey) => ({ paramKey, numel: BigInt(PASS_NUMEL) })) }, ctx);
    projections.set(c, new Map(got.map((p) => [p.paramKey, p.indices.map(Number)])));
  }
  // (The bare run, before this, sent sketches without samples: it reads no bytes.)
  const warm = await runLoad<MixResult>(job(server.address, WARMUP));
  const rssBefore = rssMiB();
  const result = await runLoad<MixResult>(job(server.address, CALLS));
  const rssAfter = rssMiB();
  const status = await app.api.getStatus({}, ctx);
  await app.close();
  await server.shutdown(1000);
  await app.closeStore();
  rmSync(stateDir, { recursive: true, force: true });

  const errors = [...warm.perOp, ...result.perOp].reduce((n, o) => n + o.errors, 0);
  console.log(`Mixed load over loopback on the ${status.stateStore.split(":")[0]} store: ${CLIENTS} clients, one call in flight each, ${result.calls} calls (after ${warm.calls} warm-up); weights ${MIX.map((m) => `${m.name} ${m.weight}`).join(", ")}`);
  console.log(`${"RPC".padEnd(22)} ${"calls".padStart(8)} ${"errors".padStart(7)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)}   bare p50 / p99 ms`);
  for (const op of result.perOp) {
    const b = bareResult.perOp.find((x) => x.name === op.name);
    console.log(
      `${op.name.padEnd(22)} ${String(op.calls).padStart(8)} ${String(op.errors).padStart(7)} ${op.p50.toFixed(3).padStart(8)} ${op.p99.toFixed(3).padStart(8)}   ${b?.p50.toFixed(3)} / ${b?.p99.toFixed(3)}${op.firstError === "" ? "" : `   first error: ${op.firstError}`}`,
    );
  }
  console.log(`throughput kasmina ${result.rate.toFixed(0)} calls/s, bare grpc-js ${bareResult.rate.toFixed(0)} calls/s, ratio ${(result.rate / bareResult.rate).toFixed(2)}`);
  console.log(
    `RSS ${rssBefore.toFixed(1)} → ${rssAfter.toFixed(1)} MiB: ${(((rssAfter - rssBefore) / result.calls) * 100_000).toFixed(1)} MiB per 100k calls${gc === undefined ? " (run with node --expose-gc for steadier figures)" : " (after a full GC)"}; ` +
      `telemetry cache ${status.telemetryCache?.size ?? 0} packets (TTL ${config.cacheTtlSeconds} s), ${status.seeds} seeds`,
  );
  console.log(`errors ${errors}${errors === 0 ? "" : "  <- must be 0"}`);
  if (errors !== 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
