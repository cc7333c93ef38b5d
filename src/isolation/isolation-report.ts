// What a session reports; the RPC layer maps it onto IsolationReport (DESIGN §2).

import type { BackendName } from "./reduction-backend.js";

/** spec §13.1 `stats`: norms are square roots of the accumulated sums of squares. */
export interface IsolationStats {
  readonly hostNorm: number;
  readonly seedNorm: number;
  readonly dotProduct: number;
}

/** The raw accumulators (fixtures record them as host_norm_sq / seed_norm_sq). */
export interface IsolationAccumulators {
  readonly hostNormSq: number;
  readonly seedNormSq: number;
  readonly dotProduct: number;
}

export interface IsolationSnapshot extends IsolationStats, IsolationAccumulators {
  /** √(Σ pairing variances) of the sampled dot product (DESIGN §2.3); 0 in exact mode. */
  readonly dotStandardError: number;
  /** verify(): |dotProduct| ≤ threshold. */
  readonly isolated: boolean;
  /** Observers installed (between open and close). */
  readonly active: boolean;
  /** Active and collection enabled: gradients arriving now are recorded. */
  readonly collecting: boolean;
  readonly backend: BackendName;
  /** Gradient elements recorded since the session was created (not cleared by reset/close). */
  readonly elementsProcessed: number;
}

export interface PassResult {
  /** False when the session was closed or collection disabled at commit: nothing was recorded. */
  readonly applied: boolean;
  /** Elements received in this pass (whether or not applied). */
  readonly elements: number;
  readonly chunks: number;
  /** The session after the commit. */
  readonly snapshot: IsolationSnapshot;
}
