// The load generator of the gRPC benches runs on its own thread (bench/load-client.mjs): like a
// trainer in its own process, the client does not share the server's event loop, so what the
// comparison measures is the server's per-call work.
import { Worker } from "node:worker_threads";

export type LoadJob =
  | { kind: "unary"; address: string; path: string; requests: Uint8Array[]; clients: number; inflight: number; seconds: number }
  /** Streams alternate between the addresses, so drift in machine load hits each alike. */
  | { kind: "streams"; addresses: string[]; path: string; chunks: Uint8Array[]; streams: number };

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
