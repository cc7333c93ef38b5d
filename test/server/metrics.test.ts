// The binding OpenTelemetry instruments (DESIGN §2), read back through a real SDK reader while the
// service runs over a real socket; and the Prometheus endpoint of the real process over HTTP.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { AggregationTemporality, DataPointType, MeterProvider, MetricReader, type MetricData } from "@opentelemetry/sdk-metrics";
import { afterEach, describe, expect, it } from "vitest";
import { OtelMetrics } from "../../src/infra/otel-metrics.js";
import { createKasminaApi } from "../../src/server/kasmina-api.js";
import { CallRuns } from "../../src/server/call-run.js";
import { TrainingRuns } from "../../src/kasmina/training-runs.js";
import { MemoryStateStore } from "../../src/infra/memory-state-store.js";
import { SeedManager } from "../../src/kasmina/seed-manager.js";
import { BlueprintCatalog } from "../../src/infra/blueprint-catalog.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { CommandType, SeedOperation, type TelemetryPacket } from "../../src/leyline.js";
import { call, kasminaClient } from "../support/grpc-clients.js";
import { spawnKasmina } from "../support/process.js";
import { command, germinate, seedOp, startHarness, type Harness } from "../support/harness.js";
import { freePort } from "../support/redis-server.js";
import { Metadata } from "@grpc/grpc-js";
import { GradientSide } from "../../generated/esper/kasmina/v1/kasmina.js";

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

async function metric(reader: MetricReader, name: string): Promise<MetricData | undefined> {
  const { resourceMetrics } = await reader.collect();
  return resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
}

async function sums(reader: MetricReader, name: string): Promise<Record<string, number>> {
  const data = await metric(reader, name);
  const out: Record<string, number> = {};
  if (data === undefined) return out;
  expect(data.dataPointType).toBe(DataPointType.SUM);
  for (const point of data.dataPoints) out[JSON.stringify(point.attributes)] = point.value as number;
  return out;
}

let harness: Harness | undefined;
let provider: MeterProvider | undefined;
afterEach(async () => {
  await harness?.close();
  await provider?.shutdown();
  harness = undefined;
  provider = undefined;
});

describe("OpenTelemetry instruments", () => {
  it("counts commands by type, outcome and reason, RPC durations, violations, GC runs and queue drops", async () => {
    const reader = new TestReader();
    provider = new MeterProvider({ readers: [reader] });
    harness = await startHarness({ KASMINA_GC_FREQUENCY: "1" }, new OtelMetrics(provider.getMeter("kasmina-test")));
    const { client, clock } = harness;
    await call(client, client.registerHost, { parameters: [{ key: "h", shape: [1], trainable: true, elementBytes: 4 }] });
    await call(client, client.applyCommand, { command: germinate(clock, "s") });
    const unsigned = germinate(clock, "t");
    unsigned.annotations = new Map();
    await call(client, client.applyCommand, { command: unsigned }).catch(() => undefined);
    for (let i = 0; i < 70; i++) await call(client, client.applyCommand, { command: seedOp(clock, "s", SeedOperation.SEED_OP_FINE_TUNE) });
    await call(client, client.recordIsolationViolation, { seedId: "s" });
    await call(client, client.updateEpoch, { epoch: 1 });
    await call(client, client.advanceAlpha, { seedId: "ghost", steps: 1 }).catch(() => undefined);

    expect(await sums(reader, "kasmina.commands")).toEqual({
      [JSON.stringify({ command_type: "COMMAND_SEED", outcome: "accepted", reason: "ok" })]: 71,
      [JSON.stringify({ command_type: "COMMAND_SEED", outcome: "rejected", reason: "missing_signature" })]: 1,
    });
    expect(await sums(reader, "kasmina.isolation.violations")).toEqual({ "{}": 1 });
    expect(await sums(reader, "kasmina.gc.runs")).toEqual({ "{}": 1 });
    // germinate (5 events) + 70 × 1 + the violation's 2 events, into a 64-entry queue keeping 63.
    expect(await sums(reader, "kasmina.seed_queue.dropped")).toEqual({ [JSON.stringify({ queue: "seed" })]: 5 + 70 + 2 - 63 });

    const durations = await metric(reader, "rpc.server.call.duration");
    expect(durations?.dataPointType).toBe(DataPointType.HISTOGRAM);
    const byStatus = new Map(durations?.dataPoints.map((p) => [`${String(p.attributes["rpc.method"])} ${String(p.attributes["rpc.grpc.status_code"])}`, p.value]));
    expect(byStatus.get("/esper.kasmina.v1.KasminaService/ApplyCommand 0")).toMatchObject({ count: 71 });
    expect(byStatus.get("/esper.kasmina.v1.KasminaService/ApplyCommand 7")).toMatchObject({ count: 1 }); // PERMISSION_DENIED
    expect(byStatus.get("/esper.kasmina.v1.KasminaService/AdvanceAlpha 5")).toMatchObject({ count: 1 }); // NOT_FOUND
  });

  it("records kasmina.isolation.report.duration for every full and sketch pass (a DESIGN §2 name that had no instrument)", async () => {
    const reader = new TestReader();
    provider = new MeterProvider({ readers: [reader] });
    harness = await startHarness({}, new OtelMetrics(provider.getMeter("kasmina-test")));
    const { client, clock } = harness;
    await call(client, client.registerHost, { parameters: [{ key: "h", shape: [4], trainable: true, elementBytes: 4 }] });
    await call(client, client.applyCommand, { command: germinate(clock, "s") });
    const values = Buffer.from(new Float32Array([1, 2, 3, 4]).buffer);
    await new Promise<void>((resolve, reject) => {
      const c = client.reportGradients((error) => (error ? reject(error) : resolve()));
      c.write({ seedId: "s", paramKey: "h", side: GradientSide.GRADIENT_SIDE_HOST, numel: 4n, offset: 0n, values });
      c.end();
    });
    await call(client, client.getProjection, { seedId: "s", parameters: [{ paramKey: "h", numel: 4n }] });
    await call(client, client.reportGradientSketch, {
      seedId: "s",
      sketches: [{ paramKey: "h", side: GradientSide.GRADIENT_SIDE_HOST, numel: 4n, sumSquares: 30, sampledValues: values }],
    });
    // A refused pass is no report: it records nothing.
    await call(client, client.reportGradientSketch, { seedId: "s", sketches: [] }).catch(() => undefined);

    const data = await metric(reader, "kasmina.isolation.report.duration");
    expect(data?.dataPointType).toBe(DataPointType.HISTOGRAM);
    expect(data?.descriptor.unit).toBe("s");
    const byPass = new Map(data?.dataPoints.map((p) => [String(p.attributes["kasmina.isolation.pass"]), p.value]));
    expect(byPass.get("full")).toMatchObject({ count: 1 });
    expect(byPass.get("sketch")).toMatchObject({ count: 1 });
  });

  it("a slow WatchTelemetry client loses its oldest packets, counted, instead of growing the server", async () => {
    const reader = new TestReader();
    provider = new MeterProvider({ readers: [reader] });
    const metrics = new OtelMetrics(provider.getMeter("kasmina-test"));
    const clock = new FakeClock();
    const manager = new SeedManager({ runtime: BlueprintCatalog.builtin(), clock, metrics });
    const runs = new TrainingRuns({ store: new MemoryStateStore(metrics), clock, defaultRunId: "default", maxRuns: 1, verifier: undefined, createManager: () => manager, onStoreFailure: () => undefined });
    const api = createKasminaApi({ runs: new CallRuns(runs), version: "t", isolationBackend: "js", prefetchIssue: () => undefined, watchQueueLimit: 8, metrics });
    const controller = new AbortController();
    const written: TelemetryPacket[] = [];
    let release: () => void = () => undefined;
    // A client that accepts one packet and then stops reading.
    const write = async (response: { packet?: TelemetryPacket }): Promise<void> => {
      if (response.packet !== undefined) written.push(response.packet);
      await new Promise<void>((resolve) => (release = resolve));
    };
    const watching = api.watchTelemetry({}, write, { method: "watch", metadata: new Metadata(), signal: controller.signal });
    for (let i = 0; i < 100; i++) manager.recordIsolationViolation(`seed-${i % 3}`);
    manager.finalizeStep(1n);
    const emitted = manager.packets.size;
    await new Promise((r) => setTimeout(r, 10));
    // The packets arrived in one burst: the watcher kept the newest 8 (one now in the client's
    // hands) and dropped and counted the rest.
    expect(written).toHaveLength(1);
    expect(await sums(reader, "kasmina.telemetry.watch_dropped")).toEqual({ "{}": emitted - 8 });
    controller.abort();
    release();
    await watching;
    expect(manager.packets.listenerCount).toBe(0);
  });
});

describe("Prometheus endpoint of the real process", () => {
  it("serves the binding instruments over HTTP when KASMINA_PROMETHEUS_PORT is set", async () => {
    const prometheusPort = await freePort();
    const kasmina = spawnKasmina({ ESPER_LEYLINE_SECRET: "s", KASMINA_PROMETHEUS_PORT: String(prometheusPort) });
    try {
      const client = kasminaClient(await kasmina.address());
      const clock = new FakeClock(0, Date.now());
      await call(client, client.applyCommand, { command: command(clock, { commandType: CommandType.COMMAND_OPTIMIZER }, "s") });
      client.close();
      const body = await (await fetch(`http://127.0.0.1:${prometheusPort}/metrics`)).text();
      expect(body).toMatch(/kasmina_commands_total\{command_type="COMMAND_OPTIMIZER",outcome="accepted",reason="ok"[^}]*\} 1/);
      expect(body).toContain("rpc_server_call_duration");
    } finally {
      await kasmina.stop();
    }
  });
});

describe("OTLP export of the real process", () => {
  it("posts metrics to OTEL_EXPORTER_OTLP_ENDPOINT and flushes them on SIGTERM", async () => {
    const received: { path: string; body: Buffer }[] = [];
    const collector = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on("data", (d: Buffer) => parts.push(d));
      req.on("end", () => {
        received.push({ path: req.url ?? "", body: Buffer.concat(parts) });
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
    const port = (collector.address() as AddressInfo).port;
    const kasmina = spawnKasmina({
      ESPER_LEYLINE_SECRET: "s",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_METRIC_EXPORT_INTERVAL: "60000",
    });
    try {
      const client = kasminaClient(await kasmina.address());
      const clock = new FakeClock(0, Date.now());
      await call(client, client.applyCommand, { command: command(clock, { commandType: CommandType.COMMAND_OPTIMIZER }, "s") });
      client.close();
      // The export interval is a minute: what arrives was flushed by the graceful shutdown.
      expect((await kasmina.stop()).code).toBe(0);
      const metrics = received.filter((r) => r.path === "/v1/metrics").map((r) => r.body.toString()).join("\n");
      expect(metrics).toContain("kasmina.commands");
      expect(metrics).toContain("rpc.server.call.duration");
    } finally {
      await kasmina.stop("SIGKILL");
      await new Promise((resolve) => collector.close(resolve));
    }
  });
});
