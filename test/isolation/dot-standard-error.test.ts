// DESIGN §2.3 dot_standard_error: the error bar of the sampled dot product. Over many independent
// random index draws on the same synthetic gradients, the spread of the estimates must match the
// standard error the session reports (within 10 %), for one pairing and for several (variances add),
// through a streamed full pass and through a sketch pass alike.

import { describe, expect, it } from "vitest";
import {
  GradientSide,
  IsolationSession,
  pairingVariance,
  randomProjectionSampler,
  seededRandom,
  type GradientSketchInput,
} from "../../src/isolation/index.js";

interface Shared {
  readonly key: string;
  readonly host: Float32Array;
  readonly seed: Float32Array;
}

/** Correlated, skewed gradients so the products have a non-trivial spread and a non-zero mean. */
function sharedParam(key: string, numel: number, seed: number): Shared {
  const random = seededRandom(seed);
  const host = new Float32Array(numel);
  const seedGrad = new Float32Array(numel);
  for (let i = 0; i < numel; i++) {
    const a = (random() - 0.5) * 2;
    host[i] = a * a * a + 0.1;
    seedGrad[i] = 0.5 * a + (random() - 0.5) * 0.2 + (i % 7 === 0 ? 1 : 0);
  }
  return { key, host, seed: seedGrad };
}

function exactDot(params: readonly Shared[]): number {
  let dot = 0;
  for (const p of params) for (let i = 0; i < p.host.length; i++) dot += p.host[i] * p.seed[i];
  return dot;
}

const bytes = (values: Float32Array): Uint8Array => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** One backward pass of every shared parameter through the streamed (chunked) path. */
function fullPass(session: IsolationSession, params: readonly Shared[]): void {
  const pass = session.beginPass();
  for (const p of params) {
    for (const [side, values] of [[GradientSide.HOST, p.host], [GradientSide.SEED, p.seed]] as const) {
      for (let offset = 0; offset < values.length; offset += 3000) {
        const chunk = values.subarray(offset, Math.min(offset + 3000, values.length));
        pass.feed({ paramKey: p.key, side, numel: values.length, offset, values: chunk });
      }
    }
  }
  pass.commit();
}

/** The same pass as sketches, built from the session's own projection, as a trainer would. */
function sketchPass(session: IsolationSession, params: readonly Shared[]): void {
  const sketches: GradientSketchInput[] = [];
  for (const p of params) {
    const plan = session.prepareProjection(p.key, p.host.length);
    for (const [side, values] of [[GradientSide.HOST, p.host], [GradientSide.SEED, p.seed]] as const) {
      const indices = plan.indices ?? [];
      const sample = Float32Array.from(indices, (i) => values[i]);
      let sumSquares = 0;
      for (const v of values) sumSquares += v * v;
      sketches.push({ paramKey: p.key, side, numel: values.length, sumSquares, sampledValues: bytes(sample) });
    }
  }
  session.applySketch(sketches);
}

function spread(params: readonly Shared[], draws: number, run: (session: IsolationSession, params: readonly Shared[]) => void) {
  const random = seededRandom(99);
  const estimates: number[] = [];
  let reportedVariance = 0;
  for (let d = 0; d < draws; d++) {
    // A fresh session per draw: projection indices are fixed per session, so each draw is a new sample.
    const session = new IsolationSession({ projectionSamples: 256, sampler: randomProjectionSampler(random) });
    session.open();
    run(session, params);
    const snapshot = session.snapshot();
    estimates.push(snapshot.dotProduct);
    reportedVariance += snapshot.dotStandardError ** 2;
  }
  const mean = estimates.reduce((a, b) => a + b, 0) / draws;
  const empiricalVariance = estimates.reduce((a, b) => a + (b - mean) ** 2, 0) / (draws - 1);
  return { mean, empiricalSd: Math.sqrt(empiricalVariance), reportedSd: Math.sqrt(reportedVariance / draws) };
}

const DRAWS = 3000;

describe("dot_standard_error against the empirical spread over random index draws", () => {
  const one = [sharedParam("shared:w", 20_000, 1)];
  const several = [sharedParam("shared:a", 12_000, 2), sharedParam("shared:b", 5_000, 3), sharedParam("shared:c", 900, 4)];

  it.each([
    ["one pairing, full pass", one, fullPass],
    ["three pairings, full pass", several, fullPass],
    ["one pairing, sketch pass", one, sketchPass],
    ["three pairings, sketch pass", several, sketchPass],
  ] as const)("%s", (_name, params, run) => {
    const { mean, empiricalSd, reportedSd } = spread(params, DRAWS, run);
    expect(empiricalSd).toBeGreaterThan(0);
    expect(Math.abs(reportedSd - empiricalSd) / empiricalSd).toBeLessThan(0.1);
    // The estimator is unbiased: its mean over the draws sits within a few standard errors of the truth.
    expect(Math.abs(mean - exactDot(params))).toBeLessThan((4 * empiricalSd) / Math.sqrt(DRAWS));
  });

  it("is 0 in exact mode and when every element is sampled, and unbounded with one sample", () => {
    const a = new Float32Array([1, 2, 3, 4]);
    const b = new Float32Array([2, 0, 1, 5]);
    expect(pairingVariance(4, a, b)).toBe(0);
    expect(pairingVariance(10, a.subarray(0, 1), b.subarray(0, 1))).toBe(Number.POSITIVE_INFINITY);
    // d = 10, k = 4, products 2, 0, 3, 20: mean 6.25, s² = (4.25² + 6.25² + 3.25² + 13.75²) / 3.
    const s2 = (4.25 ** 2 + 6.25 ** 2 + 3.25 ** 2 + 13.75 ** 2) / 3;
    expect(pairingVariance(10, a, b)).toBeCloseTo((10 * 6 * s2) / 4, 9);

    const exact = new IsolationSession({ projectionSamples: 0 });
    exact.open();
    fullPass(exact, one);
    expect(exact.snapshot().dotStandardError).toBe(0);
    expect(exact.snapshot().dotProduct).toBeCloseTo(exactDot(one), 6);
    const small = new IsolationSession({ projectionSamples: 256 });
    small.open();
    fullPass(small, [sharedParam("shared:small", 200, 5)]);
    expect(small.snapshot().dotStandardError).toBe(0);
  });
});
