// ReportGradients over a real socket: every isolation fixture replayed in exact mode with several
// chunkings, framing errors, cancellation, and decision 12 (a failed verify records a violation).
import { afterEach, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import type { KasminaServiceClient, ReportGradientsRequest, ReportGradientsResponse } from "../../generated/esper/kasmina/v1/kasmina.js";
import { GradientSide } from "../../generated/esper/kasmina/v1/kasmina.js";
import { SeedOperation } from "../../src/leyline.js";
import { call } from "../support/grpc-clients.js";
import { germinate, seedOp, startHarness, type Harness } from "../support/harness.js";
import { CHUNKINGS, chunksFor, type Chunking } from "../isolation/chunking.js";
import { loadIsolationFixtures, type IsolationFixture } from "../isolation/fixtures.js";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const toBytes = (values: Float32Array | Uint8Array): Buffer =>
  values instanceof Float32Array ? Buffer.from(values.buffer, values.byteOffset, values.byteLength) : Buffer.from(values);

/** Sends one stream and resolves with the response or rejects with the status. */
function stream(client: KasminaServiceClient, chunks: readonly ReportGradientsRequest[]): Promise<ReportGradientsResponse> {
  return new Promise((resolve, reject) => {
    const call = client.reportGradients((error: ServiceError | null, response: ReportGradientsResponse) =>
      error ? reject(error) : resolve(response),
    );
    for (const chunk of chunks) call.write(chunk);
    call.end();
  });
}

const chunk = (fields: Partial<ReportGradientsRequest>): ReportGradientsRequest => ({
  seedId: "s",
  paramKey: "p",
  side: GradientSide.GRADIENT_SIDE_HOST,
  numel: 4n,
  offset: 0n,
  values: Buffer.from(new Float32Array([1, 2, 3, 4]).buffer),
  ...fields,
});

async function collectingSeed(env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness(env);
  await call(h.client, h.client.registerHost, { parameters: [{ key: "host.w", shape: [4], trainable: true, elementBytes: 4 }] });
  const response = await call(h.client, h.client.applyCommand, { command: germinate(h.clock, "s") });
  expect(response.seed?.stage).toBe(3); // TRAINING: collecting
  return h;
}

function close(actual: number, expected: number, tolerance: { rel: number; abs: number }, label: string): void {
  expect(Math.abs(actual - expected), `${label}: ${actual} vs ${expected}`).toBeLessThanOrEqual(tolerance.abs + tolerance.rel * Math.abs(expected));
}

const fixtures = loadIsolationFixtures();
// Every backend this machine can load (tensorflow and tensorflow-gpu need libtensorflow).
const BACKENDS = ["js", "wasm"] as const;
const cases: [string, Chunking, string, IsolationFixture][] = fixtures.flatMap((f) =>
  CHUNKINGS.flatMap((c) => BACKENDS.filter((b) => b === "js" || c === "random").map((b) => [f.scenario, c, b, f] as [string, Chunking, string, IsolationFixture])),
);

describe("isolation fixtures over gRPC, exact mode (KASMINA_PROJECTION_SAMPLES=0)", () => {
  it.each(cases)("%s, chunking %s, backend %s", async (_scenario, chunking, backend, fixture) => {
    const variant = fixture.variants.find((v) => v.id === "projection_0");
    if (variant === undefined) throw new Error("fixture has no projection_0 variant");
    harness = await collectingSeed({
      KASMINA_PROJECTION_SAMPLES: "0",
      KASMINA_ISOLATION_THRESHOLD: String(variant.threshold),
      KASMINA_ISOLATION_BACKEND: backend,
    });
    const tolerance = { rel: 1e-5, abs: 1e-9 };
    let violations = 0;
    for (const [i, event] of fixture.events.entries()) {
      // Session-control steps are the manager's business (stages, pause); replay the passes before them.
      if (event.op !== "backward") break;
      const gradients = event.hook_calls.map((hook) => ({ side: hook.role, key: hook.param, values: new Float32Array(event.grads[hook.param] ?? []) }));
      const chunks = chunksFor(gradients, chunking, 7 + i).map((c) =>
        chunk({ paramKey: c.paramKey, side: c.side, numel: BigInt(c.numel), offset: BigInt(c.offset), values: toBytes(c.values) }),
      );
      if (chunks.length === 0) continue;
      const { report } = await stream(harness.client, chunks);
      const expected = variant.expected[i];
      if (report === undefined || expected === undefined) throw new Error("missing report or expectation");
      close(report.hostNorm, expected.host_norm, tolerance, `pass ${i} host_norm`);
      close(report.seedNorm, expected.seed_norm, tolerance, `pass ${i} seed_norm`);
      close(report.dotProduct, expected.dot_product, tolerance, `pass ${i} dot_product`);
      expect(report.isolated, `pass ${i} verify`).toBe(expected.verify);
      expect(report.collecting).toBe(true);
      // DESIGN decision 12: each failed verify at the end of a stream records a violation.
      if (!expected.verify) violations += 1;
      expect(report.seedViolations).toBe(violations);
    }
    const { report } = await call(harness.client, harness.client.getIsolationStats, { seedId: "s" });
    expect(report?.backend).toBe(backend);
  });
});

describe("ReportGradients framing and status codes", () => {
  async function statsOf(h: Harness): Promise<string> {
    const { report } = await call(h.client, h.client.getIsolationStats, { seedId: "s" });
    return JSON.stringify([report?.hostNorm, report?.seedNorm, report?.dotProduct, report?.elementsProcessed.toString(), report?.seedViolations]);
  }

  const bad: [string, ReportGradientsRequest[], status, RegExp][] = [
    ["empty seed id", [chunk({ seedId: "" })], status.INVALID_ARGUMENT, /seed_id must not be empty/],
    ["unknown seed", [chunk({ seedId: "ghost" })], status.NOT_FOUND, /ghost/],
    ["two seeds in one stream", [chunk({ numel: 4n }), chunk({ seedId: "t", paramKey: "q" })], status.INVALID_ARGUMENT, /differs from/],
    ["side unset", [chunk({ side: GradientSide.GRADIENT_SIDE_UNSPECIFIED })], status.INVALID_ARGUMENT, /chunk 1 /],
    ["side undefined by the contract", [chunk({ side: 7 as GradientSide })], status.INVALID_ARGUMENT, /chunk 1 /],
    ["numel changes within the stream", [chunk({ paramKey: "r", numel: 8n }), chunk({ paramKey: "r", numel: 4n, offset: 4n })], status.INVALID_ARGUMENT, /^chunk 2 .*numel 4 differs from 8/],
    ["numel differs from an earlier pass", [chunk({ numel: 8n })], status.INVALID_ARGUMENT, /^chunk 1 .*numel 8 differs from 4 seen earlier/],
    ["runs past numel", [chunk({ numel: 3n })], status.INVALID_ARGUMENT, /chunk 1 /],
    ["byte length not a multiple of 4", [chunk({ values: Buffer.alloc(6) })], status.INVALID_ARGUMENT, /chunk 1 /],
    ["overlap", [chunk({ paramKey: "r", numel: 8n }), chunk({ paramKey: "r", numel: 8n, offset: 2n })], status.INVALID_ARGUMENT, /^chunk 2 .*already received/],
    ["gap", [chunk({ paramKey: "r", numel: 8n })], status.INVALID_ARGUMENT, /"r"/],
    ["non-finite value", [chunk({ values: Buffer.from(new Float32Array([1, Number.NaN, 3, 4]).buffer) })], status.INVALID_ARGUMENT, /chunk 1 /],
    ["no chunks", [], status.INVALID_ARGUMENT, /no chunks/],
  ];

  it.each(bad)("%s → rejected, no accumulator changes", async (_label, chunks, code, detail) => {
    harness = await collectingSeed();
    // One good pass first, so "no change" is checked against non-zero state.
    await stream(harness.client, [chunk({}), chunk({ side: GradientSide.GRADIENT_SIDE_SEED, paramKey: "q" })]);
    const before = await statsOf(harness);
    const error = await stream(harness.client, chunks).then(
      () => undefined,
      (e: unknown) => e as ServiceError,
    );
    expect(error?.code).toBe(code);
    expect(error?.details).toMatch(detail);
    expect(await statsOf(harness)).toBe(before);
  });

  it("a stream cancelled mid-way leaves no trace", async () => {
    harness = await collectingSeed();
    const before = await statsOf(harness);
    const h = harness;
    await new Promise<void>((resolve) => {
      const c = h.client.reportGradients(() => resolve());
      c.write(chunk({ numel: 8n }));
      setTimeout(() => c.cancel(), 50);
    });
    // The server sees the cancellation asynchronously; give it a moment, then compare.
    await new Promise((r) => setTimeout(r, 100));
    expect(await statsOf(h)).toBe(before);
  });

  it("a seed that is not collecting gets collecting=false and nothing accumulated", async () => {
    harness = await collectingSeed();
    const h = harness;
    await call(h.client, h.client.applyCommand, { command: seedOp(h.clock, "s", SeedOperation.SEED_OP_START_GRAFTING) });
    await call(h.client, h.client.applyCommand, { command: seedOp(h.clock, "s", SeedOperation.SEED_OP_STABILIZE) }); // SHADOWING
    const { report } = await stream(h.client, [chunk({})]);
    expect(report).toMatchObject({ collecting: false, hostNorm: 0, seedNorm: 0, dotProduct: 0 });
  });

  it("GetIsolationStats needs a managed seed", async () => {
    harness = await collectingSeed();
    await expect(call(harness.client, harness.client.getIsolationStats, { seedId: "" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(call(harness.client, harness.client.getIsolationStats, { seedId: "ghost" })).rejects.toMatchObject({ code: status.NOT_FOUND });
  });
});
