// The load generator of the gRPC benches runs on its own thread (bench/load-client.mjs): like a
// trainer in its own process, the client does not share the server's event loop, so what the
// comparison measures is the server's per-call work.
import { Worker } from "node:worker_threads";

export type LoadJob =
  | { kind: "unary"; address: string; path: string; requests: Uint8Array[]; clients: number; inflight: number; seconds: number }
  /** Streams alternate between the addresses, so drift in machine load hits each alike. */
  | { kind: "streams"; addresses: string[]; path: string; chunks: Uint8Array[]; streams: number }
  | MixJob;

/** Operations of a mixed load; a unary op's inputs are request bodies, a stream op's are lists of chunks. */
export interface MixOp {
  name: string;
  path: string;
  stream: boolean;
}

export interface MixJob {
  kind: "mix";
  address: string;
  ops: MixOp[];
  /** Indices into ops, repeated by every client in turn. */
  schedule: number[];
  /** Per client: op name → its inputs (used round-robin). */
  clients: Record<string, (Uint8Array | Uint8Array[])[]>[];
  /** Calls in all, shared equally by the clients. */
  count: number;
}

export interface MixResult {
  seconds: number;
  calls: number;
  rate: number;
  perOp: { name: string; calls: number; errors: number; firstError: string; p50: number; p99: number }[];
}

export interface UnaryResult {
  rate: number;
  p50: number;
  p99: number;
  errors: number;
}

/** GB/s per address, in the order given. */
export type StreamsResult = number[];

export function runLoad<R>(job: LoadJob): Promise<R> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./load-client.mjs", import.meta.url), { workerData: job });
    worker.once("message", (result: R) => {
      resolve(result);
      void worker.terminate();
    });
    worker.once("error", reject);
  });
}
