// A real Prometheus scrapes the real service with deploy/prometheus/prometheus.yml (target and
// interval replaced by the test's); PromQL over its HTTP API reads back the counters and the
// operator gauges with the values the calls produced, and every query of deploy/grafana/kasmina.json
// parses and returns data.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../src/repo-root.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { CircuitBreakerState, CommandType, SeedOperation } from "../../src/leyline.js";
import { call, kasminaClient } from "../support/grpc-clients.js";
import { breakerCommand, command, germinate, seedOp, SECRET } from "../support/harness.js";
import { spawnKasmina, type KasminaProcess } from "../support/process.js";
import { PrometheusServer, type PromSample } from "../support/prometheus.js";
import { freePort } from "../support/redis-server.js";
import type { KasminaServiceClient } from "../../generated/esper/kasmina/v1/kasmina.js";


const deployFile = (...parts: string[]): string => readFileSync(join(repoRoot(), "deploy", ...parts), "utf8");

/** The shipped scrape config with this test's target and a 1 s interval. */
export function templatedScrapeConfig(metricsPort: number): string {
  const text = deployFile("prometheus", "prometheus.yml");
  const out = text.replace(/targets: \[[^\]]*\]/, `targets: ["127.0.0.1:${metricsPort}"]`).replace(/(scrape|evaluation)_interval: \d+s/g, "$1_interval: 1s");
  expect(out).toContain(`127.0.0.1:${metricsPort}`);
  return out;
}

interface DashboardPanel {
  title: string;
  targets?: { expr: string }[];
}

export function dashboardQueries(): { panel: string; expr: string }[] {
  const dashboard = JSON.parse(deployFile("grafana", "kasmina.json")) as { panels: DashboardPanel[] };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
}

/** Grafana's variables as the dashboard's "All" selection and a short rate window would set them. */
const grafanaVariables = (expr: string): string => expr.replaceAll("$__rate_interval", "10s").replaceAll("$run", ".*");

const value = (samples: PromSample[]): number => Number(samples[0]?.value[1]);

let kasmina: KasminaProcess;
let prometheus: PrometheusServer;
let client: KasminaServiceClient;

beforeAll(async () => {
  const metricsPort = await freePort();
  kasmina = spawnKasmina({ ESPER_LEYLINE_SECRET: SECRET, KASMINA_PROMETHEUS_PORT: String(metricsPort), KASMINA_GC_FREQUENCY: "1", KASMINA_CACHE_TTL_SECONDS: "1" });
  const address = await kasmina.address();
  // Prometheus starts while the calls run.
  const started = PrometheusServer.start(templatedScrapeConfig(metricsPort));
  client = kasminaClient(address);
  const clock = new FakeClock(0, Date.now());
  await call(client, client.registerHost, { parameters: [{ key: "h", shape: [4], trainable: true, elementBytes: 4 }] });
  await call(client, client.applyCommand, { command: germinate(clock, "seed-a") });
  await call(client, client.applyCommand, { command: germinate(clock, "seed-b") });
  await call(client, client.applyCommand, { command: seedOp(clock, "seed-b", SeedOperation.SEED_OP_START_GRAFTING) });
  const unsigned = germinate(clock, "seed-c");
  unsigned.annotations = new Map();
  await expect(call(client, client.applyCommand, { command: unsigned })).rejects.toMatchObject({ code: 7 });
  // 70 events into one 64-entry seed queue: some are dropped (and counted).
  for (let i = 0; i < 70; i++) await call(client, client.applyCommand, { command: seedOp(clock, "seed-a", SeedOperation.SEED_OP_FINE_TUNE) });
  await call(client, client.recordIsolationViolation, { seedId: "seed-a" });
  await call(client, client.applyCommand, { command: breakerCommand(clock, CircuitBreakerState.CIRCUIT_STATE_OPEN, "test") });
  await call(client, client.applyCommand, { command: command(clock, { commandType: CommandType.COMMAND_OPTIMIZER, payload: { $case: "optimizerAdjustment", value: { optimizerId: "adam", hyperparameters: new Map() } } }) });
  // The kernel cache entries expire (TTL 1 s) and the next epoch's GC evicts them.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await call(client, client.updateEpoch, { epoch: 1 });
  prometheus = await started;
}, 60_000);

afterAll(async () => {
  client?.close();
  await prometheus?.stop();
  const exit = await kasmina?.stop();
  expect(exit?.code).toBe(0);
});

describe("a real Prometheus scraping deploy/prometheus/prometheus.yml", () => {
  it("reads the operator gauges with the service's values", async () => {
    await prometheus.until('up{job="kasmina"}', (s) => value(s) === 1);
    const seeds = await prometheus.until('kasmina_seeds{kasmina_training_run="default"}', (s) => s.length > 0);
    const byStage = Object.fromEntries(seeds.map((s) => [s.metric["kasmina_stage"], Number(s.value[1])]));
    expect(byStage).toMatchObject({ SEED_STAGE_TRAINING: 1, SEED_STAGE_BLENDING: 1, SEED_STAGE_DORMANT: 0, SEED_STAGE_FOSSILIZED: 0 });
    expect(Object.values(byStage).reduce((a, b) => a + b, 0)).toBe(2);
    // The kernel breaker was forced OPEN (2); the isolation breaker took one violation and stays CLOSED (1).
    expect(value(await prometheus.query('kasmina_breaker_state{kasmina_breaker="kernel",kasmina_training_run="default"}'))).toBe(CircuitBreakerState.CIRCUIT_STATE_OPEN);
    expect(value(await prometheus.query('kasmina_breaker_state{kasmina_breaker="isolation",kasmina_training_run="default"}'))).toBe(CircuitBreakerState.CIRCUIT_STATE_CLOSED);
    expect(value(await prometheus.query("kasmina_training_runs"))).toBe(1);
  });

  it("reads the counters and the RPC histogram with the calls' counts", async () => {
    await prometheus.until("kasmina_gc_runs_total", (s) => s.length > 0);
    const commands = await prometheus.query("sum by (outcome, reason) (kasmina_commands_total)");
    const byOutcome = Object.fromEntries(commands.map((s) => [`${s.metric["outcome"]} ${s.metric["reason"]}`, Number(s.value[1])]));
    expect(byOutcome).toEqual({ "accepted ok": 2 + 1 + 70 + 1 + 1, "rejected missing_signature": 1 });
    expect(value(await prometheus.query("kasmina_isolation_violations_total"))).toBe(1);
    expect(value(await prometheus.query("kasmina_gc_runs_total"))).toBe(1);
    expect(value(await prometheus.query("sum(kasmina_seed_queue_dropped_total)"))).toBeGreaterThan(0);
    expect(value(await prometheus.query('sum(kasmina_memory_evictions_total)'))).toBeGreaterThan(0);
    const apply = '{rpc_method="/esper.kasmina.v1.KasminaService/ApplyCommand"';
    expect(value(await prometheus.query(`sum(rpc_server_call_duration_count${apply},rpc_grpc_status_code="0"})`))).toBe(75);
    expect(value(await prometheus.query(`sum(rpc_server_call_duration_count${apply},rpc_grpc_status_code="7"})`))).toBe(1);
    // Seconds buckets: a fast call lands below 0.1 s, not in one catch-all bucket.
    expect(value(await prometheus.query(`sum(rpc_server_call_duration_bucket${apply},rpc_grpc_status_code="0",le="0.1"})`))).toBeGreaterThan(0);
  });

  it("answers every query of deploy/grafana/kasmina.json with data", async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThanOrEqual(10);
    const empty: string[] = [];
    // rate() needs two scrapes inside its window: poll until every query has data or time runs out.
    const deadline = Date.now() + 15_000;
    for (const { panel, expr } of queries) {
      let samples = await prometheus.query(grafanaVariables(expr)); // throws when the query does not parse
      while (samples.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        samples = await prometheus.query(grafanaVariables(expr));
      }
      if (samples.length === 0) empty.push(`${panel}: ${expr}`);
    }
    expect(empty).toEqual([]);
  });
});
