// One backward pass sent as gradient sketches (DESIGN §2.3): per (parameter, side) the trainer's
// Σg² over the whole gradient and g at the session's prepared indices. Sketches are checked and
// staged here, then applied by the session through the same routine a committed streamed pass
// uses (observeGradient, in the same order), so both yield the same norms, dot and verdict.

import type { ObserverSide } from "./gradient-observer.js";
import { GradientSide, quoteKey, type ParamPlan, type StagedObservation } from "./gradient-pass.js";

/** One GradientSketch, decoded (seed_id is the RPC layer's business). */
export interface GradientSketchInput {
  readonly paramKey: string;
  /** GradientSide wire number: HOST (1) or SEED (2). */
  readonly side: number;
  readonly numel: number | bigint;
  readonly sumSquares: number;
  /** Little-endian float32 values of g at the projection's indices, in their order. */
  readonly sampledValues: Uint8Array;
}

/**
 * Why a sketch pass was refused. `invalid`: the sketch itself is malformed (INVALID_ARGUMENT);
 * `no_projection` and `exact_mode`: the session cannot take it (FAILED_PRECONDITION).
 */
export type SketchErrorKind = "invalid" | "no_projection" | "exact_mode";

export class SketchError extends Error {
  override readonly name = "SketchError";

  constructor(
    readonly kind: SketchErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** What staging needs from the session. */
export interface SketchSource {
  readonly projectionSamples: number;
  /** The plan prepared for the key (by GetProjection or an earlier pass), if any. */
  preparedPlan(paramKey: string): ParamPlan | undefined;
}

export interface StagedSketchPass {
  readonly observations: readonly StagedObservation[];
  /** Σ numel: the gradient elements the pass stands for (elements_processed counts them as a full pass would). */
  readonly elements: number;
}

/** Parameter keys are capped like every client string (DESIGN §2.0). */
export const MAX_PARAM_KEY_LENGTH = 256;

const SIDE_LABEL: Readonly<Record<ObserverSide, string>> = { host: "HOST", seed: "SEED" };
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Checks every sketch, then stages them in a full pass's order: parameters in first-seen order,
 * each host side before its seed side (the order streamed chunks are committed in), so pairing
 * against samples left by earlier passes matches too. Throws SketchError on the first problem;
 * nothing is staged then.
 */
export function stageSketches(source: SketchSource, sketches: readonly GradientSketchInput[]): StagedSketchPass {
  if (source.projectionSamples <= 0) {
    throw new SketchError(
      "exact_mode",
      "exact mode (KASMINA_PROJECTION_SAMPLES=0) has no projections: exact mode needs full gradients, sent with ReportGradients",
    );
  }
  if (sketches.length === 0) throw new SketchError("invalid", "sketches is empty: a pass needs at least one gradient sketch");
  const byKey = new Map<string, { host?: StagedObservation; seed?: StagedObservation }>();
  let elements = 0;
  sketches.forEach((sketch, i) => {
    const head = `sketch ${i + 1}`;
    const key = sketch.paramKey;
    if (key.length === 0) throw new SketchError("invalid", `${head}: param_key is empty`);
    if (key.length > MAX_PARAM_KEY_LENGTH) {
      throw new SketchError("invalid", `${head}: param_key ${quoteKey(key)} is longer than ${MAX_PARAM_KEY_LENGTH} characters`);
    }
    let side: ObserverSide;
    if (sketch.side === GradientSide.HOST) side = "host";
    else if (sketch.side === GradientSide.SEED) side = "seed";
    else throw new SketchError("invalid", `${head} (param ${quoteKey(key)}): side ${String(sketch.side)} is neither HOST (1) nor SEED (2)`);
    const where = `${head} (param ${quoteKey(key)}, ${SIDE_LABEL[side]})`;
    const numel = typeof sketch.numel === "bigint" ? (sketch.numel <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(sketch.numel) : -1) : sketch.numel;
    if (!Number.isSafeInteger(numel) || numel < 0) throw new SketchError("invalid", `${where}: numel ${String(sketch.numel)} is not a non-negative safe integer`);
    const entry = byKey.get(key) ?? {};
    if (entry[side] !== undefined) throw new SketchError("invalid", `${where}: this (param_key, side) already appeared in the pass; one sketch each`);
    const sumSquares = sketch.sumSquares;
    if (!Number.isFinite(sumSquares) || sumSquares < 0) {
      throw new SketchError("invalid", `${where}: sum_squares ${sumSquares} must be finite and non-negative`);
    }
    const bytes = sketch.sampledValues;
    if (bytes.byteLength % 4 !== 0) throw new SketchError("invalid", `${where}: sampled_values are ${bytes.byteLength} bytes, not a whole number of float32s`);
    const sample = decodeFloat32(bytes);
    let sampleSquares = 0;
    for (let j = 0; j < sample.length; j++) {
      const v = sample[j];
      if (!Number.isFinite(v)) throw new SketchError("invalid", `${where}: sampled value ${j} is ${v}, not finite`);
      sampleSquares += v * v;
    }
    const plan = source.preparedPlan(key);
    if (plan === undefined || plan.numel !== numel) {
      throw new SketchError(
        "no_projection",
        `${where}: the session has no projection of param ${quoteKey(key)} with numel ${numel}` +
          (plan === undefined ? "" : ` (its projection has numel ${plan.numel})`) +
          "; call GetProjection for it first",
      );
    }
    const expected = plan.indices === null ? plan.numel : plan.indices.length;
    if (sample.length !== expected) {
      throw new SketchError("invalid", `${where}: ${sample.length} sampled values, but the projection has ${expected} indices`);
    }
    // The samples are part of g, so their squares cannot exceed Σg² (slack for the client's rounding).
    if (sampleSquares > sumSquares * (1 + 1e-6) + 1e-30) {
      throw new SketchError("invalid", `${where}: sum_squares ${sumSquares} is below the sampled values' own sum of squares ${sampleSquares}`);
    }
    entry[side] = { side, paramKey: key, normSq: sumSquares, sample, scale: plan.scale };
    byKey.set(key, entry);
    elements += numel;
  });
  const observations: StagedObservation[] = [];
  for (const entry of byKey.values()) {
    if (entry.host !== undefined) observations.push(entry.host);
    if (entry.seed !== undefined) observations.push(entry.seed);
  }
  return { observations, elements };
}

/** A fresh array: a stashed sample outlives the request buffer it came in. */
function decodeFloat32(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return out;
}
