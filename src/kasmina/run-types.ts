// Types of the seed manager's surface: its ports (isolation, prefetch) and its options and results.
import type { TelemetryEvent } from "../leyline.js";
import type { CommandVerifier, RejectionReason } from "./command-verifier.js";
import type { KernelRuntime } from "./kernel-runtime.js";
import type { Clock, MetricsPort } from "./ports.js";

export type LifecyclePacing = "driven" | "immediate";

/** What the isolation engine offers the manager: one session per seed (spec §13). */
export interface IsolationSessionHandle {
  readonly collecting: boolean;
  enableCollection(): void;
  disableCollection(): void;
  reset(): void;
  close(): void;
  stats(): { hostNorm: number; seedNorm: number; dotProduct: number };
}

export interface IsolationPort {
  openSession(seedId: string, hostParameters: readonly string[], seedParameters: readonly string[]): IsolationSessionHandle;
}

/** What the prefetch coordinator offers the manager (spec §14). */
export interface PrefetchPort {
  /** Publishes a request for the run and returns its id; throws when it cannot. */
  requestKernel(seedId: string, blueprintId: string, trainingRunId: string): string;
  /** Forget outstanding requests (retire): late replies are then ignored. */
  cancel?(requestId: string): void;
}

export interface ParameterSpecInput {
  key: string;
  shape: readonly number[];
  trainable: boolean;
  elementBytes: number;
}

export interface SeedManagerOptions {
  runtime: KernelRuntime;
  clock: Clock;
  metrics?: MetricsPort;
  log?: (message: string) => void;
  /** Absent ⇒ every command is refused with `verifier_unavailable`. */
  verifier?: CommandVerifier;
  latencyBudgetMs?: number;
  /** `undefined` disables the fallback blueprint (identity kernel only). */
  fallbackBlueprintId?: string | undefined;
  embargoSeconds?: number;
  /** ≤ 0 disables the GPU kernel cache. */
  gpuCacheCapacity?: number;
  cacheTtlSeconds?: number;
  /** KASMINA_TELEMETRY_CACHE_MAX_ENTRIES: packets the telemetry cache keeps within their TTL. */
  telemetryCacheMaxEntries?: number;
  gcFrequency?: number;
  alphaTotalSteps?: number;
  alphaTemperature?: number;
  pacing?: LifecyclePacing;
  isolation?: IsolationPort;
  prefetch?: PrefetchPort;
  /** The training run this manager serves (DESIGN §2.1); prefetch requests carry it. Default `default`. */
  trainingRunId?: string | undefined;
  packetLogCapacity?: number;
  teacherBudgetGb?: number;
}

export type CommandOutcome =
  | { accepted: true; events: TelemetryEvent[]; seedId: string | undefined }
  | { accepted: false; reason: RejectionReason | "verifier_unavailable" | "training_run_mismatch"; events: TelemetryEvent[] };

export interface GcReport {
  ran: boolean;
  skippedReason: string;
  kernelCacheExpired: number;
  telemetryCacheExpired: number;
  gcCounter: number;
  gcEpoch: number;
}

export type { CacheStatsView } from "./packet-content.js";

export const TAMIYO_KEYS = ["feature_coverage", "risk_reason", "blueprint_risk", "blueprint_tier", "blueprint_stage"] as const;
export const GLOBAL_QUEUE_CAPACITY = 4096;
export const TEACHER_BUDGET_GB = 7.0;

export const fmt = (value: number, digits: number): string => value.toFixed(digits);
export const bool = (value: boolean): string => (value ? "true" : "false");

export interface PendingPrefetch {
  seedId: string;
  blueprintId: string;
}
