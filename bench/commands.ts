// ApplyCommand over loopback with several concurrent clients (on a worker thread, as a trainer runs
// in its own process), beside (a) the in-process cost of the same commands and (b) a bare grpc-js
// server whose handler does nothing, all in one run.
// Prints commands/s, p50 and p99 latency, and the ratio to the bare rate (target ≥ 0.8).
import { Metadata, Server, ServerCredentials } from "@grpc/grpc-js";
import { runLoad, type LoadJob, type UnaryResult } from "./load-worker.js";
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

async function main(): Promise<void> {
  const config = loadConfig({ ESPER_LEYLINE_SECRET: SECRET, KASMINA_PORT: "0" });
  const log = (): void => undefined;

  // In-process: decode + validate + verify + dispatch, no transport.
  const inproc = await createApp(config, { metrics: noopMetrics, log, version: "bench" });
  const inprocRequests = signedRequests(50_000);
  const t0 = performance.now();
  for (const body of inprocRequests) await inproc.api.applyCommand(ApplyCommandRequest.decode(body), { method: PATH, metadata: new Metadata(), signal: new AbortController().signal });
  const inprocUs = ((performance.now() - t0) * 1000) / inprocRequests.length;

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

  const app = await createApp(config, { metrics: noopMetrics, log, version: "bench" });
  const server = await startServer({ config, api: app.api, metrics: noopMetrics, log });
  // Enough unique commands that none is replayed within the run.
  const kasmina = await runLoad<UnaryResult>(job(server.address, signedRequests(Math.ceil(bareResult.rate * SECONDS * 1.5) + 10_000)));
  await app.close();
  await server.shutdown(1000);

  const row = (name: string, r: UnaryResult): string =>
    `${name.padEnd(28)} ${r.rate.toFixed(0).padStart(8)} cmd/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   errors ${r.errors}`;
  console.log(`ApplyCommand over loopback, ${CLIENTS} clients × ${INFLIGHT} in flight, ${SECONDS} s each (client on its own thread, same run)`);
  console.log(row("bare grpc-js (no-op handler)", bareResult));
  console.log(row("kasmina ApplyCommand", kasmina));
  console.log(`in-process handleCommand      ${inprocUs.toFixed(1)} µs/command (${(1e6 / inprocUs).toFixed(0)} cmd/s on one core)`);
  console.log(`ratio kasmina / bare          ${(kasmina.rate / bareResult.rate).toFixed(2)}  (target ≥ 0.80)`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
