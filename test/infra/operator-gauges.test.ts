// The operator gauges through the real OTel SDK (a real MetricReader): one series per stage and
// run, breaker states as Leyline numbers, the run count; the source is read at each collection,
// so a composition root serving many runs passes more snapshots and nothing else changes.
import { AggregationTemporality, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { afterEach, describe, expect, it } from "vitest";
import { OtelMetrics } from "../../src/infra/otel-metrics.js";
import { BreakerState, type BreakerStateValue } from "../../src/kasmina/circuit-breaker.js";
import { registerOperatorGauges, type RunGaugeSnapshot } from "../../src/kasmina/operator-gauges.js";
import { SeedLifecycleStage as Stage } from "../../src/leyline.js";

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

let provider: MeterProvider | undefined;
afterEach(async () => {
  await provider?.shutdown();
  provider = undefined;
});

async function points(reader: MetricReader, name: string): Promise<Record<string, number>> {
  const { resourceMetrics } = await reader.collect();
  const metric = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
  return Object.fromEntries((metric?.dataPoints ?? []).map((p) => [JSON.stringify(p.attributes), p.value as number]));
}

const run = (name: string, stages: [Stage, number][], kernel: BreakerStateValue, isolation: BreakerStateValue): RunGaugeSnapshot => ({
  run: name,
  seedsByStage: new Map(stages),
  kernelBreaker: kernel,
  isolationBreaker: isolation,
});

describe("operator gauges (kasmina.seeds, kasmina.breaker.state, kasmina.training_runs)", () => {
  it("report every run's seeds by stage, both breakers and the run count, as of each collection", async () => {
    const reader = new TestReader();
    provider = new MeterProvider({ readers: [reader] });
    let runs: RunGaugeSnapshot[] = [run("default", [[Stage.SEED_STAGE_TRAINING, 2]], BreakerState.CLOSED, BreakerState.CLOSED)];
    registerOperatorGauges(new OtelMetrics(provider.getMeter("t")), () => runs);

    const seeds = await points(reader, "kasmina.seeds");
    expect(Object.keys(seeds)).toHaveLength(11); // every stage but UNKNOWN, for the one run
    expect(seeds[JSON.stringify({ "kasmina.stage": "SEED_STAGE_TRAINING", "kasmina.training_run": "default" })]).toBe(2);
    expect(seeds[JSON.stringify({ "kasmina.stage": "SEED_STAGE_DORMANT", "kasmina.training_run": "default" })]).toBe(0);
    expect(await points(reader, "kasmina.training_runs")).toEqual({ "{}": 1 });

    runs = [...runs, run("job-2", [[Stage.SEED_STAGE_BLENDING, 1], [Stage.SEED_STAGE_CULLED, 3]], BreakerState.OPEN, BreakerState.HALF_OPEN)];
    const breakers = await points(reader, "kasmina.breaker.state");
    expect(breakers).toEqual({
      [JSON.stringify({ "kasmina.breaker": "kernel", "kasmina.training_run": "default" })]: 1,
      [JSON.stringify({ "kasmina.breaker": "isolation", "kasmina.training_run": "default" })]: 1,
      [JSON.stringify({ "kasmina.breaker": "kernel", "kasmina.training_run": "job-2" })]: 2,
      [JSON.stringify({ "kasmina.breaker": "isolation", "kasmina.training_run": "job-2" })]: 3,
    });
    const seeds2 = await points(reader, "kasmina.seeds");
    expect(seeds2[JSON.stringify({ "kasmina.stage": "SEED_STAGE_CULLED", "kasmina.training_run": "job-2" })]).toBe(3);
    expect(await points(reader, "kasmina.training_runs")).toEqual({ "{}": 2 });
  });

  it("registering again on the same sink replaces the source instead of doubling the series", async () => {
    const reader = new TestReader();
    provider = new MeterProvider({ readers: [reader] });
    const metrics = new OtelMetrics(provider.getMeter("t"));
    registerOperatorGauges(metrics, () => [run("old", [], BreakerState.CLOSED, BreakerState.CLOSED)]);
    registerOperatorGauges(metrics, () => [run("new", [], BreakerState.OPEN, BreakerState.CLOSED)]);
    expect(await points(reader, "kasmina.training_runs")).toEqual({ "{}": 1 });
    const breakers = await points(reader, "kasmina.breaker.state");
    expect(Object.keys(breakers).every((k) => k.includes('"new"'))).toBe(true);
  });
});
