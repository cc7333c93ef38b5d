// Worker-thread body of bench/load-worker.ts: the gRPC load client, in plain JavaScript so the
// thread needs no TypeScript loader. Jobs and results are described in load-worker.ts.
import { parentPort, workerData } from "node:worker_threads";
import { Client, Metadata, credentials } from "@grpc/grpc-js";

const identity = (b) => b;
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

async function unary(job) {
  const clients = Array.from({ length: job.clients }, () => new Client(job.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }));
  const requests = job.requests.map((r) => Buffer.from(r));
  const latencies = [];
  let errors = 0;
  let cursor = 0;
  const deadline = performance.now() + job.seconds * 1000;
  const loop = async (client) => {
    while (performance.now() < deadline) {
      const body = requests[cursor++ % requests.length];
      const started = performance.now();
      await new Promise((resolve) => {
        client.makeUnaryRequest(job.path, identity, identity, body, new Metadata(), (error) => {
          if (error) errors += 1;
          else latencies.push(performance.now() - started);
          resolve();
        });
      });
    }
  };
  const started = performance.now();
  await Promise.all(clients.flatMap((c) => Array.from({ length: job.inflight }, () => loop(c))));
  const elapsed = (performance.now() - started) / 1000;
  clients.forEach((c) => c.close());
  const sorted = Float64Array.from(latencies).sort();
  return { rate: latencies.length / elapsed, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), errors };
}

function sendStream(client, path, chunks) {
  return new Promise((resolve, reject) => {
    const call = client.makeClientStreamRequest(path, identity, identity, new Metadata(), (error) => (error ? reject(error) : resolve()));
    let i = 0;
    // Respect the transport's backpressure.
    const pump = () => {
      while (i < chunks.length) {
        if (!call.write(chunks[i++])) {
          call.once("drain", pump);
          return;
        }
      }
      call.end();
    };
    pump();
  });
}

async function streams(job) {
  const chunks = job.chunks.map((c) => Buffer.from(c));
  const bytes = chunks.reduce((n, c) => n + c.length, 0);
  const clients = job.addresses.map((a) => new Client(a, credentials.createInsecure(), { "grpc.max_send_message_length": 64 << 20 }));
  for (const client of clients) await sendStream(client, job.path, chunks); // warm-up
  const seconds = clients.map(() => 0);
  for (let s = 0; s < job.streams; s++) {
    for (const [i, client] of clients.entries()) {
      const started = performance.now();
      await sendStream(client, job.path, chunks);
      seconds[i] += (performance.now() - started) / 1000;
    }
  }
  clients.forEach((c) => c.close());
  return seconds.map((t) => (bytes * job.streams) / t / 1e9);
}

const job = workerData;
const result = job.kind === "unary" ? await unary(job) : await streams(job);
parentPort.postMessage(result);
