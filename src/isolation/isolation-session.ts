// A gradient-isolation session for one (host, seed) pair (spec §13.1). Gradients arrive either one
// whole hook call at a time (observe) or as a streamed pass (beginPass); both end in the same
// observer routine (gradient-observer.ts, KAS-H1-005).

import { GradientFramingError } from "./gradient-framing-error.js";
import {
  PendingDots,
  cloneObserverState,
  emptyObserverState,
  observeGradient,
  type ObserverSide,
  type ObserverState,
} from "./gradient-observer.js";
import { GradientPass, gatherRange, type ParamPlan, type PassTarget, type StagedObservation } from "./gradient-pass.js";
import type {
  IsolationAccumulators,
  IsolationSnapshot,
  IsolationStats,
  PassResult,
} from "./isolation-report.js";
import { firstNonFinite, jsBackend, sumSquaresF32 } from "./js-backend.js";
import { randomProjectionSampler, type ProjectionSampler } from "./projection-sampler.js";
import { stageSketches, type GradientSketchInput } from "./sketch-pass.js";
import type { ReductionBackend } from "./reduction-backend.js";

export const DEFAULT_ISOLATION_THRESHOLD = 1e-6;
export const DEFAULT_PROJECTION_SAMPLES = 256;

export interface IsolationSessionConfig {
  /** verify() passes while |dot| ≤ threshold (KASMINA_ISOLATION_THRESHOLD, default 1e-6). */
  readonly threshold?: number;
  /** Samples per parameter; ≤ 0 selects exact mode (KASMINA_PROJECTION_SAMPLES, default 256). */
  readonly projectionSamples?: number;
  readonly sampler?: ProjectionSampler;
  /** Default: the js backend. One backend is normally shared by all sessions of a process. */
  readonly backend?: ReductionBackend;
}

export class IsolationSession {
  readonly threshold: number;
  readonly projectionSamples: number;
  readonly backend: ReductionBackend;
  private readonly sampler: ProjectionSampler;
  /** Per parameter key, prepared once and kept across reset/close/open (spec §13.2). */
  private readonly plans = new Map<string, ParamPlan>();
  private state: ObserverState = emptyObserverState();
  private isActive = false;
  private collectionEnabled = true;
  private elementsTotal = 0;
  private readonly passTarget: PassTarget;

  constructor(config: IsolationSessionConfig = {}) {
    const threshold = config.threshold ?? DEFAULT_ISOLATION_THRESHOLD;
    const samples = config.projectionSamples ?? DEFAULT_PROJECTION_SAMPLES;
    if (!Number.isFinite(threshold)) throw new RangeError(`isolation threshold must be finite, got ${threshold}`);
    if (!Number.isSafeInteger(samples)) throw new RangeError(`projection samples must be an integer, got ${samples}`);
    this.threshold = threshold;
    this.projectionSamples = samples;
    this.sampler = config.sampler ?? randomProjectionSampler();
    this.backend = config.backend ?? jsBackend;
    this.passTarget = {
      backend: this.backend,
      knownNumel: (key) => this.plans.get(key)?.numel,
      planFor: (key, numel) => this.planFor(key, numel),
      applyPass: (observations, elements, chunks) => this.applyPass(observations, elements, chunks),
    };
  }

  /** Installs the observers; idempotent. */
  open(): void {
    this.isActive = true;
  }

  /** Removes the observers, clears stashes and zeroes the accumulators. Projection indices are kept. */
  close(): void {
    this.isActive = false;
    this.state = emptyObserverState();
  }

  /** Clears stashes and zeroes the accumulators; observers stay. */
  reset(): void {
    this.state = emptyObserverState();
  }

  enableCollection(): void {
    this.collectionEnabled = true;
  }

  /** Observers then ignore gradients (a pass committed meanwhile records nothing). */
  disableCollection(): void {
    this.collectionEnabled = false;
  }

  get active(): boolean {
    return this.isActive;
  }

  get collecting(): boolean {
    return this.isActive && this.collectionEnabled;
  }

  stats(): IsolationStats {
    return {
      hostNorm: Math.sqrt(this.state.hostNormSq),
      seedNorm: Math.sqrt(this.state.seedNormSq),
      dotProduct: this.state.dot,
    };
  }

  /** √ of the summed pairing variances (DESIGN §2.3). */
  dotStandardError(): number {
    return Math.sqrt(this.state.dotVariance);
  }

  accumulators(): IsolationAccumulators {
    return { hostNormSq: this.state.hostNormSq, seedNormSq: this.state.seedNormSq, dotProduct: this.state.dot };
  }

  /** |dot product| ≤ threshold (note ≤: equality passes). */
  verify(): boolean {
    return Math.abs(this.state.dot) <= this.threshold;
  }

  snapshot(): IsolationSnapshot {
    return {
      ...this.stats(),
      ...this.accumulators(),
      dotStandardError: this.dotStandardError(),
      isolated: this.verify(),
      active: this.isActive,
      collecting: this.collecting,
      backend: this.backend.name,
      elementsProcessed: this.elementsTotal,
    };
  }

  /**
   * One hook call with a whole gradient (the in-process equivalent of a one-chunk pass).
   * Returns false when ignored (closed or collection disabled). Throws GradientFramingError for a
   * numel that differs from earlier gradients of the key, or a non-finite value.
   */
  observe(side: ObserverSide, paramKey: string, gradient: Float32Array): boolean {
    if (!this.collecting) return false;
    const plan = this.planFor(paramKey, gradient.length);
    let normSq = this.backend.sumSquares(gradient);
    if (!Number.isFinite(normSq)) {
      const bad = firstNonFinite(gradient);
      if (bad >= 0) {
        throw new GradientFramingError(
          "non_finite",
          `param "${paramKey}" ${side}: non-finite value ${gradient[bad]} at element ${bad}`,
        );
      }
      normSq = sumSquaresF32(gradient); // float32 overflow on a device backend; the double sum is exact enough
    }
    let sample: Float32Array;
    if (plan.indices === null) sample = gradient.slice();
    else {
      sample = new Float32Array(plan.indices.length);
      gatherRange(gradient, 0, plan.indices, sample);
    }
    this.applyPass([{ side, paramKey, normSq, sample, scale: plan.scale }], gradient.length, 1);
    return true;
  }

  /** Starts a streamed backward pass; feed its chunks, then commit or abort it. Passes may overlap. */
  beginPass(): GradientPass {
    return new GradientPass(this.passTarget);
  }

  /** DESIGN §2.3 GetProjection: the key's plan, prepared on first use and fixed afterwards. */
  prepareProjection(paramKey: string, numel: number): ParamPlan {
    return this.planFor(paramKey, numel);
  }

  preparedPlan(paramKey: string): ParamPlan | undefined {
    return this.plans.get(paramKey);
  }

  /** DESIGN §2.3 ReportGradientSketch: one pass, staged by sketch-pass.ts, applied like a committed stream. */
  applySketch(sketches: readonly GradientSketchInput[]): PassResult {
    const staged = stageSketches(this, sketches);
    return this.applyPass(staged.observations, staged.elements, sketches.length);
  }

  private planFor(paramKey: string, numel: number): ParamPlan {
    const existing = this.plans.get(paramKey);
    if (existing !== undefined) {
      if (existing.numel !== numel) {
        throw new GradientFramingError(
          "numel_mismatch",
          `param "${paramKey}": numel ${numel} differs from ${existing.numel} seen earlier in this session`,
        );
      }
      return existing;
    }
    const plan = this.preparePlan(paramKey, numel);
    this.plans.set(paramKey, plan);
    return plan;
  }

  /** spec §13.2: exact mode when sampling is off or the parameter is empty; else a sorted sample. */
  private preparePlan(paramKey: string, numel: number): ParamPlan {
    if (this.projectionSamples <= 0 || numel === 0) return { numel, indices: null, scale: 1 };
    const k = Math.min(this.projectionSamples, numel);
    const drawn = this.sampler.sample(paramKey, numel, this.projectionSamples);
    if (drawn.length !== k) {
      throw new Error(`projection sampler returned ${drawn.length} indices for "${paramKey}", expected ${k}`);
    }
    // Sorted so each chunk finds its indices by binary search; both sides use the same order.
    const indices = Float64Array.from(drawn).sort();
    for (let i = 0; i < k; i++) {
      const at = indices[i];
      if (!Number.isInteger(at) || at < 0 || at >= numel || (i > 0 && at === indices[i - 1])) {
        throw new Error(`projection sampler returned an invalid or repeated index ${at} for "${paramKey}" (numel ${numel})`);
      }
    }
    return { numel, indices, scale: numel / k };
  }

  /** Applies staged observations atomically: on a clone, swapped in only when every dot succeeded. */
  private applyPass(observations: readonly StagedObservation[], elements: number, chunks: number): PassResult {
    if (!this.collecting) return { applied: false, elements, chunks, snapshot: this.snapshot() };
    const next = cloneObserverState(this.state);
    const dots = new PendingDots();
    for (const o of observations) observeGradient(next, o.side, o.paramKey, o, dots);
    dots.settle(next, this.backend);
    this.state = next;
    this.elementsTotal += elements;
    return { applied: true, elements, chunks, snapshot: this.snapshot() };
  }
}

/**
 * Opens one session per seed with shared settings; matches the seed manager's IsolationPort
 * structurally (isolation/ does not import kasmina/). Parameter lists are not needed: pairing is
 * keyed by the trainer's parameter keys as gradients arrive.
 */
export function isolationSessionFactory(config: IsolationSessionConfig = {}): {
  openSession(seedId: string, hostParameters: readonly string[], seedParameters: readonly string[]): IsolationSession;
} {
  return {
    openSession: () => {
      const session = new IsolationSession(config);
      session.open();
      return session;
    },
  };
}
