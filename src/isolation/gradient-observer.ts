// KAS-H1-005: the one observer routine for both sides of a session (spec §13.3). The host and
// seed paths differ only in which accumulator and which stash they use, so the side is a parameter
// rather than a second copy of the code.

import { pairingVariance } from "./dot-variance.js";
import type { DotPair, ReductionBackend } from "./reduction-backend.js";

export type ObserverSide = "host" | "seed";

/** What one hook call contributes, already reduced from its gradient. */
export interface Observation {
  /** Σ g² over the whole gradient (never sampled). */
  readonly normSq: number;
  /** g at the parameter's projection indices, or a copy of all of g in exact mode. */
  readonly sample: Float32Array;
  /** numel / sample count in projection mode, 1 in exact mode. */
  readonly scale: number;
}

export interface ObserverState {
  hostNormSq: number;
  seedNormSq: number;
  dot: number;
  /** Σ over pairings of the variance of each sampled dot term (DESIGN §2.3); 0 in exact mode. */
  dotVariance: number;
  /** Pairing stashes per side, keyed by parameter key; at most one side holds a key at a time. */
  readonly stash: Readonly<Record<ObserverSide, Map<string, Float32Array>>>;
}

export function emptyObserverState(): ObserverState {
  return { hostNormSq: 0, seedNormSq: 0, dot: 0, dotVariance: 0, stash: { host: new Map(), seed: new Map() } };
}

/** A copy whose maps can change without touching the original (stashed arrays are shared, never mutated). */
export function cloneObserverState(s: ObserverState): ObserverState {
  return {
    hostNormSq: s.hostNormSq,
    seedNormSq: s.seedNormSq,
    dot: s.dot,
    dotVariance: s.dotVariance,
    stash: { host: new Map(s.stash.host), seed: new Map(s.stash.seed) },
  };
}

/** Dot products the routine asked for, evaluated later in one batched backend call. */
export class PendingDots {
  private readonly pairs: DotPair[] = [];
  private readonly scales: number[] = [];

  add(stashed: Float32Array, mine: Float32Array, scale: number): void {
    this.pairs.push([stashed, mine]);
    this.scales.push(scale);
  }

  /**
   * dot += value × scale, in the order the pairings happened (the original's order of additions);
   * each pairing's variance adds to dotVariance (numel = scale × samples, exactly, by construction).
   */
  settle(state: ObserverState, backend: ReductionBackend): void {
    if (this.pairs.length === 0) return;
    const values = backend.dotBatch(this.pairs);
    for (let i = 0; i < values.length; i++) {
      const [a, b] = this.pairs[i];
      state.dot += values[i] * this.scales[i];
      state.dotVariance += pairingVariance(Math.round(this.scales[i] * a.length), a, b);
    }
  }
}

const OTHER: Readonly<Record<ObserverSide, ObserverSide>> = { host: "seed", seed: "host" };

/**
 * One collected hook call: add the full-gradient norm² to this side; then consume the other
 * side's stash for the key (queueing stash·sample×scale) or leave this side's sample, overwriting
 * an earlier one.
 */
export function observeGradient(
  state: ObserverState,
  side: ObserverSide,
  paramKey: string,
  observation: Observation,
  dots: PendingDots,
): void {
  if (side === "host") state.hostNormSq += observation.normSq;
  else state.seedNormSq += observation.normSq;

  const other = state.stash[OTHER[side]];
  const stashed = other.get(paramKey);
  if (stashed !== undefined) {
    other.delete(paramKey);
    dots.add(stashed, observation.sample, observation.scale);
  } else {
    state.stash[side].set(paramKey, observation.sample);
  }
}
