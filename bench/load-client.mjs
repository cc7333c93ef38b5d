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

// A mix of RPCs (bench/load.ts): each client runs its own schedule of operations, one call at a
// time, until the job's total count is reached; latencies and errors are kept per operation.
async function mix(job) {
  const clients = job.clients.map(() => new Client(job.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1, "grpc.max_send_message_length": 64 << 20 }));
  const latencies = new Map(job.ops.map((op) => [op.name, []]));
  const errors = new Map(job.ops.map((op) => [op.name, 0]));
  const firstError = new Map();
  const cursors = job.clients.map(() => new Map(job.ops.map((op) => [op.name, 0])));
  // Each client makes its share of the count, so its pre-made inputs (unique commands) suffice.
  const share = Math.ceil(job.count / job.clients.length);
  let issued = 0;
  const unaryCall = (client, path, body) =>
    new Promise((resolve) => client.makeUnaryRequest(path, identity, identity, Buffer.from(body), new Metadata(), (error) => resolve(error)));
  const streamCall = (client, path, chunks) =>
    new Promise((resolve) => {
      const call = client.makeClientStreamRequest(path, identity, identity, new Metadata(), (error) => resolve(error));
      let i = 0;
      const pump = () => {
        while (i < chunks.length) {
          if (!call.write(Buffer.from(chunks[i++]))) {
            call.once("drain", pump);
            return;
          }
        }
        call.end();
      };
      pump();
    });
  const loop = async (c) => {
    const client = clients[c];
    const mine = job.clients[c];
    for (let k = 0; k < share; k++) {
      issued += 1;
      const op = job.ops[job.schedule[k % job.schedule.length]];
      const inputs = mine[op.name];
      const n = cursors[c].get(op.name);
      cursors[c].set(op.name, n + 1);
      const input = inputs[n % inputs.length];
      const started = performance.now();
      const error = op.stream ? await streamCall(client, op.path, input) : await unaryCall(client, op.path, input);
      if (error) {
        errors.set(op.name, errors.get(op.name) + 1);
        if (!firstError.has(op.name)) firstError.set(op.name, `${error.code} ${error.details}`);
      } else latencies.get(op.name).push(performance.now() - started);
    }
  };
  const started = performance.now();
  await Promise.all(clients.map((_, c) => loop(c)));
  const elapsed = (performance.now() - started) / 1000;
  clients.forEach((c) => c.close());
  const perOp = job.ops.map((op) => {
    const sorted = Float64Array.from(latencies.get(op.name)).sort();
    return { name: op.name, calls: sorted.length + errors.get(op.name), errors: errors.get(op.name), firstError: firstError.get(op.name) ?? "", p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
  });
  return { seconds: elapsed, calls: issued, rate: issued / elapsed, perOp };
}

const job = workerData;
const result = job.kind === "unary" ? await unary(job) : job.kind === "mix" ? await mix(job) : await streams(job);
parentPort.postMessage(result);
