// The operator gauges (DESIGN §2 names): seeds by stage, breaker states and the number of training
// runs, read at scrape time from a source the composition root supplies. The source yields one
// snapshot per run, so serving many runs changes only what app.ts passes in.
import type { BreakerStateValue } from "./circuit-breaker.js";
import type { GaugeObservation, MetricsPort } from "./ports.js";
import type { SeedManager } from "./seed-manager.js";
import { SeedLifecycleStage, seedLifecycleStageToJSON } from "../leyline.js";

export interface RunGaugeSnapshot {
  readonly run: string;
  /** Managed seeds per Leyline SeedLifecycleStage number. */
  readonly seedsByStage: ReadonlyMap<number, number>;
  /** Leyline CircuitBreakerState numbers: CLOSED 1, OPEN 2, HALF_OPEN 3. */
  readonly kernelBreaker: BreakerStateValue;
  readonly isolationBreaker: BreakerStateValue;
}

export type RunGaugeSource = () => Iterable<RunGaugeSnapshot>;

export const SEEDS_GAUGE = "kasmina.seeds";
export const BREAKER_GAUGE = "kasmina.breaker.state";
export const RUNS_GAUGE = "kasmina.training_runs";

/** Every stage a seed can be in; each is reported (0 when empty) so a dashboard's series do not come and go. */
const STAGES: readonly SeedLifecycleStage[] = Object.values(SeedLifecycleStage).filter(
  (v): v is SeedLifecycleStage => typeof v === "number" && v > SeedLifecycleStage.SEED_STAGE_UNKNOWN,
);

/** One run's snapshot from the manager that holds its state. */
export function managerSnapshot(run: string, manager: Pick<SeedManager, "seedIds" | "stageOf" | "kernelBreaker" | "isolationBreaker">): RunGaugeSnapshot {
  const seedsByStage = new Map<number, number>();
  for (const id of manager.seedIds()) {
    const stage = manager.stageOf(id);
    if (stage !== undefined) seedsByStage.set(stage, (seedsByStage.get(stage) ?? 0) + 1);
  }
  return {
    run,
    seedsByStage,
    kernelBreaker: manager.kernelBreaker.snapshot().state,
    isolationBreaker: manager.isolationBreaker.snapshot().state,
  };
}

export function seedObservations(runs: Iterable<RunGaugeSnapshot>): GaugeObservation[] {
  const out: GaugeObservation[] = [];
  for (const run of runs) {
    for (const stage of STAGES) {
      out.push({
        value: run.seedsByStage.get(stage) ?? 0,
        attributes: { "kasmina.stage": seedLifecycleStageToJSON(stage), "kasmina.training_run": run.run },
      });
    }
  }
  return out;
}

export function breakerObservations(runs: Iterable<RunGaugeSnapshot>): GaugeObservation[] {
  const out: GaugeObservation[] = [];
  for (const run of runs) {
    for (const [breaker, state] of [["kernel", run.kernelBreaker], ["isolation", run.isolationBreaker]] as const) {
      out.push({ value: state, attributes: { "kasmina.breaker": breaker, "kasmina.training_run": run.run } });
    }
  }
  return out;
}

export function registerOperatorGauges(metrics: MetricsPort, source: RunGaugeSource): void {
  if (metrics.observableGauge === undefined) return;
  metrics.observableGauge(SEEDS_GAUGE, "Managed seeds by lifecycle stage and training run", () => seedObservations(source()));
  metrics.observableGauge(
    BREAKER_GAUGE,
    "Circuit breaker state per training run as the Leyline CircuitBreakerState number (1 closed, 2 open, 3 half-open)",
    () => breakerObservations(source()),
  );
  metrics.observableGauge(RUNS_GAUGE, "Training runs the service holds", () => [{ value: [...source()].length }]);
}
