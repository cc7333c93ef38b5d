// Reductions through TensorFlow.js (tfjs-wasm, tfjs-node, tfjs-node-gpu, or tfjs's own cpu kernels).
//
// tfjs computes in float32 only. A single float32 reduction over millions of elements drifts by
// ~sqrt(n)·2^-24 relative, which would exceed the fixtures' 1e-5 tolerance, so each array is viewed
// as rows of ROW elements: the device sums each row in float32 (short sums, small error) and the
// host adds the row sums in double. Arrays below `minDeviceElements` stay in JS: a device round trip
// for a 256-value projection sample costs far more than the arithmetic.
//
// Every tensor is created inside tf.tidy and the one result tensor is disposed after its read-back,
// so tf.memory().numTensors does not grow with the number of passes.

import { createRequire } from "node:module";
import { dirname } from "node:path";
import type * as TfModule from "@tensorflow/tfjs";
import { dotF32, sumSquaresF32 } from "./js-backend.js";
import type { BackendName, DotPair, ReductionBackend } from "./reduction-backend.js";

type Tf = typeof TfModule;
type Tensor1D = TfModule.Tensor1D;

/** tfjs-backed backends this module can load. `tfjs-cpu` (tfjs's JS kernels) exists for tests and the bench. */
export type TfjsBackendKind = "wasm" | "tensorflow" | "tensorflow-gpu" | "tfjs-cpu";

export interface TfjsBackendOptions {
  /** Arrays shorter than this are reduced in JS (default 16384). Tests set 0 to force the device path. */
  readonly minDeviceElements?: number;
  /** Bytes a pass may queue before one batched call (default 32 MiB). */
  readonly batchBytes?: number;
}

const ROW = 1024;

class TfjsReductionBackend implements ReductionBackend {
  readonly batchBytes: number;
  private readonly minDeviceElements: number;

  constructor(
    readonly name: BackendName,
    private readonly tf: Tf,
    /** The name tfjs registers: several of ours share one (`tensorflow` for both node builds). */
    private readonly tfBackendName: string,
    options: TfjsBackendOptions,
  ) {
    this.minDeviceElements = options.minDeviceElements ?? 16_384;
    this.batchBytes = options.batchBytes ?? 32 * 1024 * 1024;
  }

  sumSquares(values: Float32Array, start = 0, end = values.length): number {
    return this.sumSquaresBatch([values.subarray(start, end)])[0];
  }

  dot(a: Float32Array, b: Float32Array): number {
    return this.dotBatch([[a, b]])[0];
  }

  sumSquaresBatch(arrays: readonly Float32Array[]): Float64Array {
    return this.reduce(
      arrays.map((a) => [a, a] as const),
      (a) => sumSquaresF32(a),
      (x) => this.tf.square(x),
    );
  }

  dotBatch(pairs: readonly DotPair[]): Float64Array {
    for (const [a, b] of pairs) {
      if (a.length !== b.length) throw new RangeError(`dot: length mismatch (${a.length} vs ${b.length})`);
    }
    return this.reduce(pairs, (a, b) => dotF32(a, b), (x, y) => this.tf.mul(x, y));
  }

  /**
   * Row sums of `combine(a, b)` on the device for every large pair in one read-back; the tails that
   * do not fill a row, and small pairs, in JS.
   */
  private reduce(
    pairs: readonly DotPair[],
    inJs: (a: Float32Array, b: Float32Array) => number,
    combine: (x: TfModule.Tensor2D, y: TfModule.Tensor2D) => TfModule.Tensor,
  ): Float64Array {
    const out = new Float64Array(pairs.length);
    const onDevice: { index: number; rows: number; width: number }[] = [];
    for (let i = 0; i < pairs.length; i++) {
      const [a, b] = pairs[i];
      const n = a.length;
      if (n === 0 || n < this.minDeviceElements) {
        out[i] = inJs(a, b);
        continue;
      }
      const width = Math.min(ROW, n);
      const rows = Math.floor(n / width);
      const head = rows * width;
      out[i] = head < n ? inJs(a.subarray(head), b.subarray(head)) : 0;
      onDevice.push({ index: i, rows, width });
    }
    if (onDevice.length === 0) return out;

    this.activate();
    const tf = this.tf;
    const rowSums = tf.tidy(() => {
      const parts: Tensor1D[] = onDevice.map(({ index, rows, width }) => {
        const [a, b] = pairs[index];
        const head = rows * width;
        const x = tf.tensor2d(a.subarray(0, head), [rows, width], "float32");
        const y = a === b ? x : tf.tensor2d(b.subarray(0, head), [rows, width], "float32");
        return tf.sum(combine(x, y), 1) as Tensor1D;
      });
      return parts.length === 1 ? parts[0] : tf.concat(parts);
    });
    let data: Float32Array;
    try {
      data = rowSums.dataSync() as Float32Array;
    } finally {
      rowSums.dispose();
    }
    let at = 0;
    for (const { index, rows } of onDevice) {
      let s = out[index];
      for (let r = 0; r < rows; r++) s += data[at + r];
      at += rows;
      out[index] = s;
    }
    return out;
  }

  /**
   * tfjs has one global active backend; tests and the bench load several. Switching to an already
   * initialised backend completes synchronously inside setBackend (its promise only matters for a
   * first, asynchronous initialisation, which loadTfjsBackend has already awaited).
   */
  private activate(): void {
    if (this.tf.getBackend() === this.tfBackendName) return;
    void this.tf.setBackend(this.tfBackendName);
    if (this.tf.getBackend() !== this.tfBackendName) {
      throw new Error(`isolation backend ${this.name}: tfjs backend "${this.tfBackendName}" could not be activated`);
    }
  }
}

let tfPromise: Promise<Tf> | undefined;
let wasmPathsSet = false;

function loadTf(): Promise<Tf> {
  tfPromise ??= import("@tensorflow/tfjs");
  return tfPromise;
}

/** Imports a package that may not be installed, without TypeScript needing its types. */
async function importOptional(specifier: string): Promise<unknown> {
  return import(specifier) as Promise<unknown>;
}

async function activateOrThrow(tf: Tf, tfName: string, kind: TfjsBackendKind): Promise<void> {
  if (tf.findBackendFactory(tfName) === null) {
    throw new Error(
      `the tfjs backend "${tfName}" is not registered with this @tensorflow/tfjs (a second tfjs-core copy?)`,
    );
  }
  const ok = await tf.setBackend(tfName);
  if (!ok || tf.getBackend() !== tfName) {
    throw new Error(`tfjs backend "${tfName}" failed to initialise for ${kind}`);
  }
}

/**
 * Loads one tfjs backend; rejects with the reason when its package or native library is missing.
 * The tfjs-node packages register themselves under the name "tensorflow" on import.
 */
export async function loadTfjsBackend(
  kind: TfjsBackendKind,
  options: TfjsBackendOptions = {},
): Promise<ReductionBackend> {
  const tf = await loadTf();
  switch (kind) {
    case "tfjs-cpu":
      await activateOrThrow(tf, "cpu", kind);
      return new TfjsReductionBackend(kind, tf, "cpu", options);
    case "wasm": {
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      if (!wasmPathsSet) {
        // The .wasm binaries ship in the package's dist folder; point at it by file path so the
        // loader does not depend on how the importing module was bundled or transformed.
        // (tf.findBackend would initialise the backend, after which setWasmPaths throws.)
        const distDir = dirname(createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm"));
        wasm.setWasmPaths(`${distDir}/`);
        wasmPathsSet = true;
      }
      await activateOrThrow(tf, "wasm", kind);
      return new TfjsReductionBackend(kind, tf, "wasm", options);
    }
    case "tensorflow":
      await importOptional("@tensorflow/tfjs-node");
      await activateOrThrow(tf, "tensorflow", kind);
      return new TfjsReductionBackend(kind, tf, "tensorflow", options);
    case "tensorflow-gpu":
      // Without this TensorFlow reserves nearly all GPU memory at start-up; the trainer shares the card.
      process.env.TF_FORCE_GPU_ALLOW_GROWTH = "true";
      await importOptional("@tensorflow/tfjs-node-gpu");
      await activateOrThrow(tf, "tensorflow", kind);
      return new TfjsReductionBackend(kind, tf, "tensorflow", options);
  }
}
