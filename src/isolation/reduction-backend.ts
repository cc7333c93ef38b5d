// The arithmetic of gradient isolation (sums of squares and dot products) sits behind this one
// small interface so the same session code runs on plain typed arrays, tfjs-wasm or libtensorflow.

/** Names a backend reports (`IsolationReport.backend`, the start-up line). */
export type BackendName = "js" | "wasm" | "tensorflow" | "tensorflow-gpu" | "tfjs-cpu";

/** Values of `KASMINA_ISOLATION_BACKEND`. */
export const BACKEND_PREFERENCES = ["auto", "tensorflow-gpu", "tensorflow", "wasm", "js"] as const;
export type BackendPreference = (typeof BACKEND_PREFERENCES)[number];

export function isBackendPreference(value: string): value is BackendPreference {
  return (BACKEND_PREFERENCES as readonly string[]).includes(value);
}

/** One line of operator-facing text (a backend that failed to load, and why). */
export type BackendLog = (message: string) => void;

export type DotPair = readonly [Float32Array, Float32Array];

/**
 * Reductions over float32 data, returned as doubles. Implementations must not keep references to
 * the arrays after a call returns, and must not leak device memory.
 */
export interface ReductionBackend {
  readonly name: BackendName;
  /**
   * How many gradient bytes a pass may queue before handing them to `sumSquaresBatch` in one call.
   * 0 means "reduce each chunk as it arrives" (no queued chunk stays alive).
   */
  readonly batchBytes: number;
  /** Σ values[i]² for i in [start, end). */
  sumSquares(values: Float32Array, start?: number, end?: number): number;
  /** Σ a[i]·b[i]; a and b must have the same length. */
  dot(a: Float32Array, b: Float32Array): number;
  /** sumSquares of each array, in one round trip where the backend is a device. */
  sumSquaresBatch(arrays: readonly Float32Array[]): Float64Array;
  /** dot of each pair, in one round trip where the backend is a device. */
  dotBatch(pairs: readonly DotPair[]): Float64Array;
}
