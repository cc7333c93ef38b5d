// Which gradient positions a projection samples (spec §13.2). The session asks once per parameter
// key and keeps the answer for its lifetime (across reset, close and open), so a sampler may be
// stateless. Injectable so tests can replay the indices the fixtures recorded.

export interface ProjectionSampler {
  /**
   * Returns min(samples, numel) distinct indices in [0, numel), in any order.
   * Only called with samples ≥ 1 and numel ≥ 1.
   */
  sample(paramKey: string, numel: number, samples: number): ArrayLike<number>;
}

/** A uniform [0, 1) source; Math.random by default, seeded in tests. */
export type RandomSource = () => number;

/**
 * The first k entries of a uniformly random permutation of [0, numel): a partial Fisher–Yates
 * shuffle. Displaced entries live in a Map, so memory is O(k) even for a parameter with billions
 * of elements.
 */
export function partialFisherYates(numel: number, k: number, random: RandomSource): Float64Array {
  const out = new Float64Array(k);
  const moved = new Map<number, number>();
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (numel - i));
    const atJ = moved.get(j) ?? j;
    const atI = moved.get(i) ?? i;
    moved.set(j, atI);
    out[i] = atJ;
  }
  return out;
}

export function randomProjectionSampler(random: RandomSource = Math.random): ProjectionSampler {
  return {
    sample: (_paramKey, numel, samples) => partialFisherYates(numel, Math.min(samples, numel), random),
  };
}

/** mulberry32: a small deterministic PRNG for fixed-seed tests and benchmarks. */
export function seededRandom(seed: number): RandomSource {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
