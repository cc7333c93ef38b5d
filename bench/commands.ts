// ApplyCommand over loopback with several concurrent clients, beside (a) the in-process cost of the
// same commands and (b) a bare grpc-js server whose handler does nothing, all in one run.
// Prints commands/s, p50 and p99 latency, and the ratio to the bare rate (target ≥ 0.8).
import { Server, ServerCredentials, credentials, Client, Metadata, type ServiceError } from "@grpc/grpc-js";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { signCommand } from "../src/kasmina/command-verifier.js";
import { noopMetrics } from "../src/kasmina/ports.js";
import { AdaptationCommand, CommandType } from "../src/leyline.js";
import { startServer } from "../src/server/server.js";
import { ApplyCommandRequest } from "../generated/esper/kasmina/v1/kasmina.js";

const SECRET = "bench-secret";
const CLIENTS = Number(process.env["BENCH_CLIENTS"] ?? 8);
const INFLIGHT = Number(process.env["BENCH_INFLIGHT"] ?? 4); // outstanding calls per client
const SECONDS = Number(process.env["BENCH_SECONDS"] ?? 4);
const PATH = "/esper.kasmina.v1.KasminaService/ApplyCommand";

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
      payload: { $case: "optimizerAdjustment", value: { optimizerId: "adam", hyperparameters: { lr: 0.001, beta1: 0.9 } } },
      annotations: { training_run_id: "bench-run" },
    });
    cmd.annotations["signature"] = signCommand(cmd, SECRET);
    out.push(Buffer.from(ApplyCommandRequest.encode({ command: cmd }).finish()));
  }
  return out;
}

const percentile = (sorted: Float64Array, p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

interface LoadResult {
  rate: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Closed-loop load: CLIENTS channels × INFLIGHT outstanding calls for SECONDS. */
async function load(address: string, path: string, requests: Buffer[]): Promise<LoadResult> {
  const clients = Array.from({ length: CLIENTS }, () => new Client(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }));
  const latencies: number[] = [];
  let errors = 0;
  let cursor = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const worker = async (client: Client): Promise<void> => {
    while (performance.now() < deadline) {
      const body = requests[cursor++ % requests.length] as Buffer;
      const started = performance.now();
      await new Promise<void>((resolve) => {
        client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, body, new Metadata(), (error: ServiceError | null) => {
          if (error) errors += 1;
          else latencies.push(performance.now() - started);
          resolve();
        });
      });
    }
  };
  const started = performance.now();
  await Promise.all(clients.flatMap((c) => Array.from({ length: INFLIGHT }, () => worker(c))));
  const elapsed = (performance.now() - started) / 1000;
  clients.forEach((c) => c.close());
  const sorted = Float64Array.from(latencies).sort();
  return { rate: latencies.length / elapsed, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), errors };
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

async function main(): Promise<void> {
  const config = loadConfig({ ESPER_LEYLINE_SECRET: SECRET, KASMINA_PORT: "0" });
  const log = (): void => undefined;

  // In-process: decode + validate + verify + dispatch, no transport.
  const inproc = await createApp(config, { metrics: noopMetrics, log, version: "bench" });
  const inprocRequests = signedRequests(50_000);
  const t0 = performance.now();
  for (const body of inprocRequests) await inproc.api.applyCommand(ApplyCommandRequest.decode(body), { method: PATH, metadata: new Metadata(), signal: new AbortController().signal });
  const inprocUs = ((performance.now() - t0) * 1000) / inprocRequests.length;

  const bare = await bareServer();
  const bareResult = await load(bare.address, PATH, signedRequests(2000));
  await bare.stop();

  const app = await createApp(config, { metrics: noopMetrics, log, version: "bench" });
  const server = await startServer({ config, api: app.api, metrics: noopMetrics, log });
  // Enough unique commands that none is replayed within the run.
  const kasmina = await load(server.address, PATH, signedRequests(Math.ceil(bareResult.rate * SECONDS * 1.5) + 10_000));
  await app.close();
  await server.shutdown(1000);

  const row = (name: string, r: LoadResult): string =>
    `${name.padEnd(28)} ${r.rate.toFixed(0).padStart(8)} cmd/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   errors ${r.errors}`;
  console.log(`ApplyCommand over loopback, ${CLIENTS} clients × ${INFLIGHT} in flight, ${SECONDS} s each (same process, same run)`);
  console.log(row("bare grpc-js (no-op handler)", bareResult));
  console.log(row("kasmina ApplyCommand", kasmina));
  console.log(`in-process handleCommand      ${inprocUs.toFixed(1)} µs/command (${(1e6 / inprocUs).toFixed(0)} cmd/s on one core)`);
  console.log(`ratio kasmina / bare          ${(kasmina.rate / bareResult.rate).toFixed(2)}  (target ≥ 0.80)`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
