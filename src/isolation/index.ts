// Gradient isolation (spec §13): the domain API the ReportGradients RPC and the seed manager use.
// No grpc, OpenTelemetry or Redis here (DESIGN §1).

export { GradientFramingError, type GradientFramingCode } from "./gradient-framing-error.js";
export { type Observation, type ObserverSide } from "./gradient-observer.js";
export { GradientPass, GradientSide, type GradientChunk, type ParamPlan } from "./gradient-pass.js";
export type { IsolationAccumulators, IsolationSnapshot, IsolationStats, PassResult } from "./isolation-report.js";
export {
  DEFAULT_ISOLATION_THRESHOLD,
  DEFAULT_PROJECTION_SAMPLES,
  IsolationSession,
  isolationSessionFactory,
  type IsolationSessionConfig,
} from "./isolation-session.js";
export { jsBackend } from "./js-backend.js";
export { pairingVariance } from "./dot-variance.js";
export { MAX_PARAM_KEY_LENGTH, SketchError, stageSketches, type GradientSketchInput, type SketchErrorKind } from "./sketch-pass.js";
export {
  partialFisherYates,
  randomProjectionSampler,
  seededRandom,
  type ProjectionSampler,
  type RandomSource,
} from "./projection-sampler.js";
export {
  BACKEND_PREFERENCES,
  isBackendPreference,
  type BackendLog,
  type BackendName,
  type BackendPreference,
  type DotPair,
  type ReductionBackend,
} from "./reduction-backend.js";
export { gpuVisible, selectBackend, type SelectBackendOptions } from "./select-backend.js";
export { loadTfjsBackend, type TfjsBackendKind, type TfjsBackendOptions } from "./tfjs-backend.js";
