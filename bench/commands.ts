// ApplyCommand over loopback with several concurrent clients (on a worker thread, as a trainer runs
// in its own process), beside (a) the in-process cost of the same commands and (b) a bare grpc-js
// server whose handler does nothing, all in one run; the service once with KASMINA_STATE=memory and
// once with the SQLite store (WAL, synchronous=FULL, group commit), so every acknowledged command
// is fsynced. Prints commands/s, p50 and p99 latency, the ratios (targets ≥ 0.8), how the SQLite
// commits batched, and what one fsync costs on this disk.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata, Server, ServerCredentials } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { runLoad, type LoadJob, type UnaryResult } from "./load-worker.js";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { signCommand } from "../src/kasmina/command-verifier.js";
import { noopMetrics, type Histogram, type MetricsPort } from "../src/kasmina/ports.js";
import { AdaptationCommand, CommandType } from "../src/leyline.js";
import { startServer } from "../src/server/server.js";
import { ApplyCommandRequest } from "../generated/esper/kasmina/v1/kasmina.js";

const SECRET = "bench-secret";
const CLIENTS = Number(process.env["BENCH_CLIENTS"] ?? 8);
const INFLIGHT = Number(process.env["BENCH_INFLIGHT"] ?? 4); // outstanding calls per client
const SECONDS = Number(process.env["BENCH_SECONDS"] ?? 4);
const PATH = "/esper.kasmina.v1.KasminaService/ApplyCommand";
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 2);

let next = 0;
/** Pre-signed, unique commands: signing is the client's cost, not the server's. */
function signedRequests(n: number): Buffer[] {
  const now = BigInt(Math.floor(Date.now() / 1000));
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    next += 1;
    const cmd = AdaptationCommand.fromPartial({
      version: 1,
      commandId: `bench-${next}`,
      commandType: CommandType.COMMAND_OPTIMIZER,
      issuedAt: { seconds: now, nanos: 0 },
      issuedBy: "bench",
      payload: { $case: "optimizerAdjustment", value: { optimizerId: "adam", hyperparameters: new Map(Object.entries({ lr: 0.001, beta1: 0.9 })) } },
      annotations: new Map(Object.entries({ training_run_id: "bench-run" })),
    });
    cmd.annotations.set("signature", signCommand(cmd, SECRET));
    out.push(Buffer.from(ApplyCommandRequest.encode({ command: cmd }).finish()));
  }
  return out;
}

async function bareServer(): Promise<{ address: string; stop: () => Promise<void> }> {
  const server = new Server();
  server.addService(
    { applyCommand: { path: PATH, requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } },
    { applyCommand: (_call: unknown, callback: (e: null, r: Buffer) => void) => callback(null, Buffer.alloc(0)) },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, stop: () => new Promise((r) => server.tryShutdown(() => r())) };
}

/** kasmina.state.writes as the store records it: transactions and their total duration. */
class WriteTimes implements MetricsPort {
  transactions = 0;
  seconds = 0;
  counter = noopMetrics.counter;
  histogram(name: string): Histogram {
    if (name !== "kasmina.state.writes") return noopMetrics.histogram(name, "");
    return {
      record: (value) => {
        this.transactions += 1;
        this.seconds += value;
      },
    };
  }
}

function mean(runs: { result: UnaryResult; writes: WriteTimes }[]): { result: UnaryResult; writes: WriteTimes } {
  const avg = (f: (r: { result: UnaryResult; writes: WriteTimes }) => number): number => runs.reduce((sum, r) => sum + f(r), 0) / runs.length;
  const writes = new WriteTimes();
  writes.transactions = avg((r) => r.writes.transactions);
  writes.seconds = avg((r) => r.writes.seconds);
  return { result: { rate: avg((r) => r.result.rate), p50: avg((r) => r.result.p50), p99: avg((r) => r.result.p99), errors: avg((r) => r.result.errors) }, writes };
}

/** The cost of one durable commit on this disk: WAL + synchronous=FULL versus OFF (no fsync). */
function fsyncCost(dir: string): { fullUs: number; offUs: number } {
  const measure = (mode: string): number => {
    const db = new Database(join(dir, `fsync-${mode}.db`));
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${mode}`);
    db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
    const put = db.prepare("INSERT OR REPLACE INTO t VALUES (?, ?)");
    const one = db.transaction((i: number) => put.run(i % 100, "x".repeat(200)));
    const n = 500;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) one(i);
    const us = ((performance.now() - t0) * 1000) / n;
    db.close();
    return us;
  };
  return { fullUs: measure("FULL"), offUs: measure("OFF") };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "kasmina-bench-"));
  // The bench's commands are signed for bench-run, the run calls without metadata select.
  const env = { ESPER_LEYLINE_SECRET: SECRET, KASMINA_PORT: "0", KASMINA_TRAINING_RUN_ID: "bench-run" };
  const log = (): void => undefined;

  // In-process: decode + validate + verify + dispatch + the memory store's commit, no transport.
  const inproc = await createApp(loadConfig({ ...env, KASMINA_STATE: "memory" }), { metrics: noopMetrics, log, version: "bench" });
  const inprocRequests = signedRequests(50_000);
  const t0 = performance.now();
  for (const body of inprocRequests) await inproc.api.applyCommand(ApplyCommandRequest.decode(body), { method: PATH, metadata: new Metadata(), signal: new AbortController().signal });
  const inprocUs = ((performance.now() - t0) * 1000) / inprocRequests.length;
  await inproc.close();
  await inproc.closeStore();

  const job = (address: string, requests: Buffer[]): LoadJob => ({
    kind: "unary",
    address,
    path: PATH,
    requests,
    clients: CLIENTS,
    inflight: INFLIGHT,
    seconds: SECONDS,
  });
  const bare = await bareServer();
  const bareResult = await runLoad<UnaryResult>(job(bare.address, signedRequests(2000)));
  await bare.stop();

  const kasmina = async (state: Record<string, string>): Promise<{ result: UnaryResult; writes: WriteTimes }> => {
    const writes = new WriteTimes();
    const config = loadConfig({ ...env, ...state });
    const app = await createApp(config, { metrics: writes, log, version: "bench" });
    const server = await startServer({ config, api: app.api, metrics: noopMetrics, log });
    // Enough unique commands that none is replayed within the run.
    const result = await runLoad<UnaryResult>(job(server.address, signedRequests(Math.ceil(bareResult.rate * SECONDS * 1.5) + 10_000)));
    await app.close();
    await server.shutdown(1000);
    await app.closeStore();
    return { result, writes };
  };
  // Alternating rounds, so drift in machine load hits both stores alike; the figures are the means.
  const rounds: { memory: { result: UnaryResult; writes: WriteTimes }[]; sqlite: { result: UnaryResult; writes: WriteTimes }[] } = { memory: [], sqlite: [] };
  for (let round = 0; round < ROUNDS; round++) {
    rounds.memory.push(await kasmina({ KASMINA_STATE: "memory" }));
    rounds.sqlite.push(await kasmina({ KASMINA_STATE: "sqlite", KASMINA_STATE_PATH: join(dir, `kasmina-${round}.db`) }));
  }
  const memory = mean(rounds.memory);
  const sqlite = mean(rounds.sqlite);
  const fsync = fsyncCost(dir);
  rmSync(dir, { recursive: true, force: true });

  const row = (name: string, r: UnaryResult): string =>
    `${name.padEnd(32)} ${r.rate.toFixed(0).padStart(8)} cmd/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   errors ${r.errors}`;
  const batching = (name: string, w: WriteTimes, r: UnaryResult): string =>
    `${name.padEnd(32)} ${w.transactions} transactions, ${((r.rate * SECONDS) / Math.max(1, w.transactions)).toFixed(1)} commands each, ${((w.seconds * 1e6) / Math.max(1, w.transactions)).toFixed(0)} µs each`;
  console.log(`ApplyCommand over loopback, ${CLIENTS} clients × ${INFLIGHT} in flight, ${SECONDS} s each, stores in ${ROUNDS} alternating rounds (client on its own thread)`);
  console.log(row("bare grpc-js (no-op handler)", bareResult));
  console.log(row("kasmina, KASMINA_STATE=memory", memory.result));
  console.log(row("kasmina, KASMINA_STATE=sqlite", sqlite.result));
  console.log(`in-process handleCommand          ${inprocUs.toFixed(1)} µs/command (${(1e6 / inprocUs).toFixed(0)} cmd/s on one core, memory store)`);
  console.log(batching("  memory store commits", memory.writes, memory.result));
  console.log(batching("  sqlite store commits (FULL)", sqlite.writes, sqlite.result));
  console.log(`  one SQLite commit on this disk   ${fsync.fullUs.toFixed(0)} µs with synchronous=FULL, ${fsync.offUs.toFixed(0)} µs with OFF (fsync ≈ ${(fsync.fullUs - fsync.offUs).toFixed(0)} µs)`);
  console.log(`ratio memory / bare                ${(memory.result.rate / bareResult.rate).toFixed(2)}  (target ≥ 0.80)`);
  console.log(`ratio sqlite / memory              ${(sqlite.result.rate / memory.result.rate).toFixed(2)}  (target ≥ 0.80, every acknowledged command fsynced)`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
