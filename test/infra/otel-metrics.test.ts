import { AggregationTemporality, DataPointType, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { afterEach, describe, expect, it } from "vitest";
import { OtelMetrics } from "../../src/infra/otel-metrics.js";
import { MEMORY_EVICTIONS_METRIC, MemoryGovernor } from "../../src/kasmina/memory-governor.js";
import { FakeClock } from "../../src/kasmina/ports.js";

/** A real pull reader: collect() reads the SDK's aggregated state on demand. */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

async function sumPoints(reader: MetricReader, name: string) {
  const { resourceMetrics, errors } = await reader.collect();
  expect(errors).toEqual([]);
  const metric = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
  if (metric === undefined) return undefined;
  expect(metric.dataPointType).toBe(DataPointType.SUM);
  return {
    descriptor: metric.descriptor,
    points: metric.dataPoints
      .map((p) => ({ attributes: p.attributes, value: p.value as number }))
      .sort((a, b) => JSON.stringify(a.attributes).localeCompare(JSON.stringify(b.attributes))),
  };
}

describe("OtelMetrics", () => {
  let provider: MeterProvider | undefined;
  afterEach(async () => {
    await provider?.shutdown();
    provider = undefined;
  });

  function setup() {
    const reader = new TestReader();
    provider = new MeterProvider({ readers: [reader] });
    return { reader, metrics: new OtelMetrics(provider.getMeter("kasmina-test")) };
  }

  it("exports kasmina.memory.evictions with cache and cause attributes after a governor run", async () => {
    const { reader, metrics } = setup();
    const clock = new FakeClock(0);
    const gov = new MemoryGovernor<string, string>({ clock, metrics, kernelTtlSeconds: 10, telemetryTtlSeconds: 10 });
    for (const key of ["s1", "s2", "s3"]) gov.kernelCache.set(key, "kernel");
    gov.telemetryCache.set("p1", "packet");
    gov.registerTeacher("teacher");
    clock.advance(11);
    gov.kernelCache.get("s1"); // lazy expiry
    gov.cleanup(); // s2, s3, p1
    gov.kernelCache.set("s4", "kernel");
    gov.emergencyCleanup(); // s4 (teacher kept)

    const exported = await sumPoints(reader, MEMORY_EVICTIONS_METRIC);
    expect(exported?.descriptor).toMatchObject({ unit: "{entry}", description: expect.any(String) });
    expect(exported?.points).toEqual(
      [
        { attributes: { "kasmina.cache": "kernel", "kasmina.eviction.cause": "cleanup" }, value: 2 },
        { attributes: { "kasmina.cache": "kernel", "kasmina.eviction.cause": "emergency" }, value: 1 },
        { attributes: { "kasmina.cache": "kernel", "kasmina.eviction.cause": "expired_get" }, value: 1 },
        { attributes: { "kasmina.cache": "telemetry", "kasmina.eviction.cause": "cleanup" }, value: 1 },
      ].sort((a, b) => JSON.stringify(a.attributes).localeCompare(JSON.stringify(b.attributes))),
    );
  });

  it("creates each instrument once per name and reuses it", async () => {
    const { reader, metrics } = setup();
    const first = metrics.counter("kasmina.seed_queue.dropped", "Events dropped");
    const again = metrics.counter("kasmina.seed_queue.dropped", "Events dropped");
    expect(again).toBe(first);
    first.add(2);
    again.add(5);
    const histogram = metrics.histogram("rpc.server.call.duration", "RPC duration", "ms");
    expect(metrics.histogram("rpc.server.call.duration", "RPC duration", "ms")).toBe(histogram);
    histogram.record(3, { "rpc.method": "UpdateEpoch" });

    const dropped = await sumPoints(reader, "kasmina.seed_queue.dropped");
    expect(dropped?.points).toEqual([{ attributes: {}, value: 7 }]);
    const { resourceMetrics } = await reader.collect();
    const rpc = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === "rpc.server.call.duration");
    expect(rpc?.dataPointType).toBe(DataPointType.HISTOGRAM);
    expect(rpc?.descriptor.unit).toBe("ms");
  });
});
