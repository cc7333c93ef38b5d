// Plain-text rendering for kasminactl: aligned tables and key/value blocks for people; --json
// output goes through the generated toJSON instead (bigint-safe, proto3 JSON names).
import type { GetStatusResponse, TrainingRunSummary } from "../../generated/esper/kasmina/v1/kasmina.js";
import {
  circuitBreakerStateToJSON,
  seedLifecycleStageToJSON,
  telemetryLevelToJSON,
  type SeedState,
  type TelemetryEvent,
  type TelemetryPacket,
} from "../leyline.js";

/** Columns padded to their widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

const shortEnum = (name: string, prefix: string): string => (name.startsWith(prefix) ? name.slice(prefix.length) : name);
export const stageName = (stage: number): string => shortEnum(seedLifecycleStageToJSON(stage), "SEED_STAGE_");
export const breakerName = (state: number): string => shortEnum(circuitBreakerStateToJSON(state), "CIRCUIT_STATE_");
const levelName = (level: number): string => shortEnum(telemetryLevelToJSON(level), "TELEMETRY_LEVEL_");
const num = (n: number): string => (Number.isInteger(n) ? String(n) : n.toPrecision(6));

export function statusText(s: GetStatusResponse): string {
  const cache = (c: GetStatusResponse["kernelCache"]): string =>
    c === undefined ? "-" : `${c.size} entries, hit rate ${(c.hitRate * 100).toFixed(1)} %, ${c.evictions} evictions${c.capacity > 0n ? `, capacity ${c.capacity}` : ""}`;
  const rows: [string, string][] = [
    ["version", s.version],
    ["training run", s.trainingRun],
    ["training runs", String(s.trainingRuns)],
    ["seeds", String(s.seeds)],
    ["current epoch", String(s.currentEpoch)],
    ["kernel breaker", breakerName(s.kernelBreaker)],
    ["isolation breaker", breakerName(s.isolationBreaker)],
    ["isolation backend", s.isolationBackend],
    ["state store", s.stateStore || "-"],
    ["prefetch issue", s.prefetchIssue || "none"],
    ["kernel cache", cache(s.kernelCache)],
    ["telemetry cache", cache(s.telemetryCache)],
    ["gpu cache", cache(s.gpuCache)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}

export function seedsText(seeds: readonly SeedState[], epoch: number): string {
  if (seeds.length === 0) return `no seeds (epoch ${epoch})`;
  const rows = seeds.map((s) => [s.seedId, stageName(s.stage), String(s.ageEpochs), num(s.gradientNorm), num(s.learningRate), num(s.riskScore)]);
  return `${table(["SEED", "STAGE", "AGE", "GRAD NORM", "LR", "RISK"], rows)}\n(epoch ${epoch})`;
}

export function runsText(runs: readonly TrainingRunSummary[]): string {
  if (runs.length === 0) return "no training runs";
  const rows = runs.map((r) => [
    r.trainingRunId,
    String(r.seeds),
    String(r.currentEpoch),
    breakerName(r.isolationBreaker),
    String(r.violations),
    r.lastActivityUnixMs === 0n ? "-" : new Date(Number(r.lastActivityUnixMs)).toISOString(),
  ]);
  return table(["RUN", "SEEDS", "EPOCH", "ISOLATION BREAKER", "VIOLATIONS", "LAST ACTIVITY"], rows);
}

const eventText = (e: TelemetryEvent): string => {
  const seed = e.attributes.get("seed_id");
  return `${e.description}${seed === undefined ? "" : ` (${seed})`}`;
};

export function packetText(p: TelemetryPacket): string {
  const at = p.timestamp === undefined ? "-" : new Date(Number(p.timestamp.seconds) * 1000 + Math.floor(p.timestamp.nanos / 1e6)).toISOString();
  const events = p.events.length === 0 ? "" : `  ${p.events.map(eventText).join("; ")}`;
  return `${at}  ${levelName(p.level).padEnd(8)}  ${p.packetId}  ${p.events.length} event(s)${events}`;
}

export function eventsText(events: readonly TelemetryEvent[]): string {
  if (events.length === 0) return "no events";
  return table(
    ["EVENT", "LEVEL", "ATTRIBUTES"],
    events.map((e) => [e.description, levelName(e.level), [...e.attributes].map(([k, v]) => `${k}=${v}`).join(" ")]),
  );
}
