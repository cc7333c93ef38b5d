// ReportGradients end to end over loopback with 4 MiB chunks (the client on a worker thread, as a
// trainer runs in its own process), beside (a) the in-process engine on
// the same chunks and (b) a bare grpc-js server that only counts the bytes of the same stream, all
// in one run. Prints GB/s of gradient bytes and the ratio to the bare rate (target ≥ 0.8).
import { Server, ServerCredentials, type ServerReadableStream } from "@grpc/grpc-js";
import { runLoad, type StreamsResult } from "./load-worker.js";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { signCommand } from "../src/kasmina/command-verifier.js";
import { noopMetrics } from "../src/kasmina/ports.js";
import { AdaptationCommand, CommandType, SeedOperation } from "../src/leyline.js";
import { FLOW_CONTROL_WINDOW, startServer, widenFlowControlWindow } from "../src/server/server.js";
import { GradientSide, ReportGradientsRequest } from "../generated/esper/kasmina/v1/kasmina.js";
import { IsolationSession } from "../src/isolation/index.js";

const SECRET = "bench-secret";
const CHUNK_FLOATS = (4 * 1024 * 1024) / 4;
const PARAMS = Number(process.env["BENCH_PARAMS"] ?? 4); // per side; each 2 chunks
const STREAMS = Number(process.env["BENCH_STREAMS"] ?? 8);
const PATH = "/esper.kasmina.v1.KasminaService/ReportGradients";

/** One pass: PARAMS host and PARAMS seed parameters of 2 × 4 MiB each, encoded once. */
function passChunks(): { encoded: Buffer[]; decoded: ReportGradientsRequest[]; bytes: number } {
  const values = new Float32Array(CHUNK_FLOATS);
  for (let i = 0; i < values.length; i++) values[i] = Math.sin(i) * 1e-3;
  const payload = Buffer.from(values.buffer);
  const decoded: ReportGradientsRequest[] = [];
  for (const side of [GradientSide.GRADIENT_SIDE_HOST, GradientSide.GRADIENT_SIDE_SEED]) {
    for (let p = 0; p < PARAMS; p++) {
      for (let c = 0; c < 2; c++) {
        decoded.push({ seedId: "s", paramKey: `${side}.p${p}`, side, numel: BigInt(2 * CHUNK_FLOATS), offset: BigInt(c * CHUNK_FLOATS), values: payload });
      }
    }
  }
  const encoded = decoded.map((d) => Buffer.from(ReportGradientsRequest.encode(d).finish()));
  return { encoded, decoded, bytes: decoded.length * payload.length };
}

async function bareServer(): Promise<{ address: string; counted: () => number; stop: () => Promise<void> }> {
  let counted = 0;
  const server = new Server({ "grpc.max_receive_message_length": 64 << 20 });
  server.addService(
    { reportGradients: { path: PATH, requestStream: true, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b } },
    {
      reportGradients: (call: ServerReadableStream<Buffer, Buffer>, callback: (e: null, r: Buffer) => void) => {
        call.on("data", (b: Buffer) => (counted += b.length));
        call.on("end", () => callback(null, Buffer.alloc(0)));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  // The same transport settings as Kasmina's server, so only the handler differs.
  if (process.env["BENCH_BARE_DEFAULT_WINDOW"] === undefined) widenFlowControlWindow(server, FLOW_CONTROL_WINDOW, console.error);
  return { address: `127.0.0.1:${port}`, counted: () => counted, stop: () => new Promise((r) => server.tryShutdown(() => r())) };
}

async function main(): Promise<void> {
  const { encoded, decoded, bytes } = passChunks();

  // In-process engine on the same decoded chunks (default projection, js backend).
  const session = new IsolationSession({});
  const runPass = (): void => {
    const pass = session.beginPass();
    for (const c of decoded) pass.feed({ paramKey: c.paramKey, side: c.side, numel: c.numel, offset: c.offset, values: c.values });
    pass.commit();
  };
  runPass();
  const t0 = performance.now();
  for (let s = 0; s < STREAMS; s++) runPass();
  const engine = (bytes * STREAMS) / ((performance.now() - t0) / 1000) / 1e9;

  const bare = await bareServer();
  const config = loadConfig({ ESPER_LEYLINE_SECRET: SECRET, KASMINA_PORT: "0", KASMINA_MAX_MESSAGE_BYTES: String(64 << 20), KASMINA_STATE: "memory" });
  const app = await createApp(config, { metrics: noopMetrics, log: () => undefined, version: "bench" });
  const server = await startServer({ config, api: app.api, metrics: noopMetrics, log: () => undefined });
  app.manager.registerHost([{ key: "h", shape: [1], trainable: true, elementBytes: 4 }]);
  const cmd = AdaptationCommand.fromPartial({
    commandId: "bench-germinate",
    commandType: CommandType.COMMAND_SEED,
    targetSeedId: "s",
    issuedAt: { seconds: BigInt(Math.floor(Date.now() / 1000)), nanos: 0 },
    payload: { $case: "seedOperation", value: { operation: SeedOperation.SEED_OP_GERMINATE, blueprintId: "BP001", parameters: new Map() } },
  });
  cmd.annotations.set("signature", signCommand(cmd, SECRET));
  if (!app.manager.handleCommand(cmd).accepted) throw new Error("germinate refused");
  const [bareRate = 0, kasmina = 0] = await runLoad<StreamsResult>({ kind: "streams", addresses: [bare.address, server.address], path: PATH, chunks: encoded, streams: STREAMS });
  await bare.stop();
  const elements = app.manager.isolationSession("s")?.stats();
  await app.close();
  await server.shutdown(1000);
  await app.closeStore();

  console.log(`ReportGradients, ${STREAMS} streams of ${(bytes / 2 ** 20).toFixed(0)} MiB in 4 MiB chunks (client on its own thread, streams interleaved in one run)`);
  console.log(`bare server (counts bytes)      ${bareRate.toFixed(2)} GB/s`);
  console.log(`kasmina ReportGradients         ${kasmina.toFixed(2)} GB/s   (seed norm ${elements?.seedNorm.toFixed(3) ?? "?"})`);
  console.log(`in-process engine, no transport ${engine.toFixed(2)} GB/s`);
  console.log(`ratio kasmina / bare            ${(kasmina / bareRate).toFixed(2)}  (target ≥ 0.80)`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
