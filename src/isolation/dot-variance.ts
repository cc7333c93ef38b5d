// DESIGN §2.3 dot_standard_error: the sampled dot product estimates Σ a·b over d elements from k
// sampled products, scaled by d/k. Sampling without replacement, the variance of that term is
// d·(d − k)·s²/k with s² the products' sample variance (k − 1 in the denominator), which is an
// unbiased estimate of the population variance, so the error bar needs nothing but the samples.

/**
 * The variance of one pairing's contribution to the dot product. `numel` is d, the arrays hold the
 * k samples of each side. 0 when every element was used (k = d, exact mode); +Infinity when k = 1
 * < d, where one product says nothing about the spread (an honest "unknown", not a false 0).
 */
export function pairingVariance(numel: number, a: Float32Array, b: Float32Array): number {
  const k = a.length;
  if (k >= numel || k === 0) return 0;
  if (k === 1) return Number.POSITIVE_INFINITY;
  let sum = 0;
  for (let i = 0; i < k; i++) sum += a[i] * b[i];
  const mean = sum / k;
  // Two passes (mean first) rather than Σp² − (Σp)²/k, which cancels badly when the products agree.
  let squares = 0;
  for (let i = 0; i < k; i++) {
    const deviation = a[i] * b[i] - mean;
    squares += deviation * deviation;
  }
  const s2 = squares / (k - 1);
  return ((numel * (numel - k)) / k) * s2;
}
