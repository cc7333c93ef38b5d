// The reference backend: plain loops over Float32Array with four double accumulators.
// Each float32 square/product is exact in double (24-bit mantissas), so the only rounding is the
// double accumulation, which keeps results within ~1e-7 relative of the original's
// float32-per-hook sums (fixtures README, "Numerics"). Four independent accumulators break the
// floating-point add dependency chain so the loop runs at memory speed rather than add latency.

import type { DotPair, ReductionBackend } from "./reduction-backend.js";

export function sumSquaresF32(values: Float32Array, start = 0, end = values.length): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = start;
  for (const last = end - 3; i < last; i += 4) {
    const a = values[i];
    const b = values[i + 1];
    const c = values[i + 2];
    const d = values[i + 3];
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < end; i++) {
    const a = values[i];
    s0 += a * a;
  }
  return s0 + s1 + (s2 + s3);
}

export function dotF32(a: Float32Array, b: Float32Array): number {
  const n = a.length;
  if (b.length !== n) {
    throw new RangeError(`dot: length mismatch (${n} vs ${b.length})`);
  }
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (const last = n - 3; i < last; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; i++) {
    s0 += a[i] * b[i];
  }
  return s0 + s1 + (s2 + s3);
}

/** Index of the first NaN/±Infinity in values[start, end), or -1. Only run on the error path. */
export function firstNonFinite(values: Float32Array, start = 0, end = values.length): number {
  for (let i = start; i < end; i++) {
    if (!Number.isFinite(values[i])) return i;
  }
  return -1;
}

export const jsBackend: ReductionBackend = {
  name: "js",
  batchBytes: 0,
  sumSquares: sumSquaresF32,
  dot: dotF32,
  sumSquaresBatch(arrays: readonly Float32Array[]): Float64Array {
    const out = new Float64Array(arrays.length);
    for (let i = 0; i < arrays.length; i++) out[i] = sumSquaresF32(arrays[i]);
    return out;
  },
  dotBatch(pairs: readonly DotPair[]): Float64Array {
    const out = new Float64Array(pairs.length);
    for (let i = 0; i < pairs.length; i++) out[i] = dotF32(pairs[i][0], pairs[i][1]);
    return out;
  },
};
