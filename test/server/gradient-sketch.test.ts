// GetProjection and ReportGradientSketch over a real socket (DESIGN §2.3): the projection is the
// one a full pass samples, a sketch pass reports what a full pass of the same gradients reports,
// and each error of §2.3 gets its status while changing nothing.
import { afterEach, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import type {
  GradientSketch,
  IsolationReport,
  KasminaServiceClient,
  ParameterProjection,
  ReportGradientsRequest,
  ReportGradientsResponse,
} from "../../generated/esper/kasmina/v1/kasmina.js";
import { GradientSide } from "../../generated/esper/kasmina/v1/kasmina.js";
import { seededRandom } from "../../src/isolation/index.js";
import { call } from "../support/grpc-clients.js";
import { germinate, startHarness, type Harness } from "../support/harness.js";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const HOST = GradientSide.GRADIENT_SIDE_HOST;
const SEED = GradientSide.GRADIENT_SIDE_SEED;
const f32 = (values: Float32Array): Buffer => Buffer.from(values.buffer, values.byteOffset, values.byteLength);

function stream(client: KasminaServiceClient, chunks: readonly ReportGradientsRequest[]): Promise<ReportGradientsResponse> {
  return new Promise((resolve, reject) => {
    const c = client.reportGradients((error: ServiceError | null, response: ReportGradientsResponse) => (error ? reject(error) : resolve(response)));
    for (const chunk of chunks) c.write(chunk);
    c.end();
  });
}

async function collectingSeed(env: Record<string, string> = {}, seedId = "s"): Promise<Harness> {
  const h = await startHarness(env);
  await call(h.client, h.client.registerHost, { parameters: [{ key: "host.w", shape: [4], trainable: true, elementBytes: 4 }] });
  const response = await call(h.client, h.client.applyCommand, { command: germinate(h.clock, seedId) });
  expect(response.seed?.stage).toBe(3); // TRAINING: collecting
  return h;
}

const project = (h: Harness, parameters: { paramKey: string; numel: bigint }[], seedId = "s") =>
  call(h.client, h.client.getProjection, { seedId, parameters });
const sketch = (h: Harness, sketches: GradientSketch[], seedId = "s") => call(h.client, h.client.reportGradientSketch, { seedId, sketches });
const stats = async (h: Harness): Promise<IsolationReport | undefined> => (await call(h.client, h.client.getIsolationStats, { seedId: "s" })).report;

function gradient(numel: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: numel }, () => (random() - 0.5) * 3);
}

function sketchOf(projection: ParameterProjection, side: GradientSide, values: Float32Array): GradientSketch {
  let sumSquares = 0;
  for (const v of values) sumSquares += v * v;
  const sample = Float32Array.from(projection.indices, (i) => values[Number(i)]);
  return { paramKey: projection.paramKey, side, numel: projection.numel, sumSquares, sampledValues: f32(sample) };
}

function chunksOf(key: string, side: GradientSide, values: Float32Array, size = 1000): ReportGradientsRequest[] {
  const out: ReportGradientsRequest[] = [];
  for (let offset = 0; offset < values.length; offset += size) {
    const part = values.subarray(offset, Math.min(offset + size, values.length));
    out.push({ seedId: "s", paramKey: key, side, numel: BigInt(values.length), offset: BigInt(offset), values: f32(part) });
  }
  return out;
}

describe("GetProjection", () => {
  it("returns the prepared indices, fixed once prepared, and exactly those a full pass samples", async () => {
    harness = await collectingSeed();
    const first = await project(harness, [
      { paramKey: "shared", numel: 10_000n },
      { paramKey: "small", numel: 100n },
      { paramKey: "empty", numel: 0n },
    ]);
    expect(first.samples).toBe(256);
    const [shared, small, empty] = first.projections;
    expect(shared.indices).toHaveLength(256);
    expect(new Set(shared.indices).size).toBe(256);
    expect(shared.indices.every((i, n) => i >= 0n && i < 10_000n && (n === 0 || i > shared.indices[n - 1]))).toBe(true);
    expect(shared.scale).toBeCloseTo(10_000 / 256, 12);
    expect(small).toEqual({ paramKey: "small", numel: 100n, indices: Array.from({ length: 100 }, (_, i) => BigInt(i)), scale: 1 });
    expect(empty).toEqual({ paramKey: "empty", numel: 0n, indices: [], scale: 0 });
    const again = await project(harness, [{ paramKey: "shared", numel: 10_000n }]);
    expect(again.projections[0]).toEqual(shared);

    // Gradients that are non-zero only off the projection give a sampled dot of exactly 0; at the
    // projection they give Σ a·b × scale: the full pass samples the same indices.
    const a = new Float32Array(10_000).fill(1);
    const b = new Float32Array(10_000).fill(1);
    for (const i of shared.indices) {
      a[Number(i)] = 0;
      b[Number(i)] = 0;
    }
    const off = await stream(harness.client, [...chunksOf("shared", HOST, a), ...chunksOf("shared", SEED, b)]);
    expect(off.report?.dotProduct).toBe(0);
    const onA = new Float32Array(10_000);
    const onB = new Float32Array(10_000);
    for (const i of shared.indices) {
      onA[Number(i)] = 2;
      onB[Number(i)] = 0.5;
    }
    const on = await stream(harness.client, [...chunksOf("shared", HOST, onA), ...chunksOf("shared", SEED, onB)]);
    expect(on.report?.dotProduct).toBeCloseTo(256 * 1 * (10_000 / 256), 9);
  });

  it.each([
    ["an empty seed_id", { seedId: "", parameters: [{ paramKey: "p", numel: 4n }] }, status.INVALID_ARGUMENT, "seed_id"],
    ["an unknown seed", { seedId: "nobody", parameters: [{ paramKey: "p", numel: 4n }] }, status.NOT_FOUND, "nobody"],
    ["no parameters", { seedId: "s", parameters: [] }, status.INVALID_ARGUMENT, "parameters is empty"],
    ["an empty param_key", { seedId: "s", parameters: [{ paramKey: "", numel: 4n }] }, status.INVALID_ARGUMENT, "param_key is empty"],
    ["a 257-character param_key", { seedId: "s", parameters: [{ paramKey: "k".repeat(257), numel: 4n }] }, status.INVALID_ARGUMENT, "longer than 256"],
    ["a repeated param_key", { seedId: "s", parameters: [{ paramKey: "p", numel: 4n }, { paramKey: "p", numel: 4n }] }, status.INVALID_ARGUMENT, "appears twice"],
    ["a numel that differs from the prepared one", { seedId: "s", parameters: [{ paramKey: "fresh", numel: 10n }, { paramKey: "known", numel: 9n }] }, status.INVALID_ARGUMENT, "differs from 8"],
  ] as const)("refuses %s and prepares nothing", async (_name, request, code, text) => {
    harness = await collectingSeed();
    await project(harness, [{ paramKey: "known", numel: 8n }]);
    await expect(call(harness.client, harness.client.getProjection, { ...request, parameters: [...request.parameters] })).rejects.toMatchObject({
      code,
      details: expect.stringContaining(text),
    });
    // "fresh" was not prepared by the refused call: another numel for it is still accepted.
    await expect(project(harness, [{ paramKey: "fresh", numel: 11n }])).resolves.toMatchObject({ projections: [{ numel: 11n }] });
  });

  it("refuses exact mode, a seed without a session, and a reply over the message limit", async () => {
    harness = await collectingSeed({ KASMINA_PROJECTION_SAMPLES: "0" });
    await expect(project(harness, [{ paramKey: "p", numel: 4n }])).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: expect.stringContaining("exact mode needs full gradients"),
    });
    await harness.close();

    harness = await startHarness({ KASMINA_MAX_MESSAGE_BYTES: "65536" });
    await call(harness.client, harness.client.applyCommand, { command: germinate(harness.clock, "lonely") });
    await expect(project(harness, [{ paramKey: "p", numel: 4n }], "lonely")).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: expect.stringContaining("no isolation session"),
    });
    await call(harness.client, harness.client.registerHost, { parameters: [{ key: "host.w", shape: [4], trainable: true, elementBytes: 4 }] });
    await call(harness.client, harness.client.applyCommand, { command: germinate(harness.clock, "s") });
    const many = Array.from({ length: 40 }, (_, i) => ({ paramKey: `p${i}`, numel: 1_000_000n }));
    await expect(project(harness, many)).rejects.toMatchObject({ code: status.RESOURCE_EXHAUSTED, details: expect.stringContaining("smaller batches") });
    await expect(project(harness, many.slice(0, 10))).resolves.toMatchObject({ samples: 256 });
  });
});

describe("ReportGradientSketch", () => {
  it("reports what a full pass of the same gradients reports: norms, dot, its standard error, verdict", async () => {
    harness = await collectingSeed();
    const params = [
      { key: "shared.a", numel: 5000, sides: [HOST, SEED] },
      { key: "shared.b", numel: 40, sides: [HOST, SEED] },
      { key: "host.c", numel: 3000, sides: [HOST] },
      { key: "seed.d", numel: 700, sides: [SEED] },
    ];
    const { projections } = await project(harness, params.map((p) => ({ paramKey: p.key, numel: BigInt(p.numel) })));
    const grads = params.flatMap((p, n) =>
      p.sides.map((side) => ({ key: p.key, side, values: gradient(p.numel, 10 * n + side), projection: projections[n] })),
    );

    const full = (await stream(harness.client, grads.flatMap((g) => chunksOf(g.key, g.side, g.values, 777)))).report;
    const once = await stats(harness);
    const sketched = (await sketch(harness, grads.map((g) => sketchOf(g.projection, g.side, g.values)))).report;
    if (full === undefined || once === undefined || sketched === undefined) throw new Error("missing report");
    // The second pass adds the same amounts: every accumulator doubles.
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
    expect(rel(sketched.hostNorm ** 2, 2 * full.hostNorm ** 2)).toBeLessThan(1e-12);
    expect(rel(sketched.seedNorm ** 2, 2 * full.seedNorm ** 2)).toBeLessThan(1e-12);
    expect(rel(sketched.dotProduct, 2 * full.dotProduct)).toBeLessThan(1e-12);
    expect(full.dotStandardError).toBeGreaterThan(0);
    expect(rel(sketched.dotStandardError ** 2, 2 * full.dotStandardError ** 2)).toBeLessThan(1e-12);
    expect(Number(sketched.elementsProcessed)).toBe(2 * Number(full.elementsProcessed));
    expect(full.isolated).toBe(false);
    expect(sketched.isolated).toBe(false);
    // Decision 12: each verified pass that failed recorded a violation.
    expect(full.seedViolations).toBe(1);
    expect(sketched.seedViolations).toBe(2);
    expect(once.dotStandardError).toBe(full.dotStandardError);
  });

  it("keeps disjoint parameters isolated", async () => {
    harness = await collectingSeed();
    const { projections } = await project(harness, [
      { paramKey: "host.x", numel: 2000n },
      { paramKey: "seed.y", numel: 2000n },
    ]);
    const report = (await sketch(harness, [sketchOf(projections[0], HOST, gradient(2000, 1)), sketchOf(projections[1], SEED, gradient(2000, 2))])).report;
    expect(report).toMatchObject({ isolated: true, dotProduct: 0, dotStandardError: 0, seedViolations: 0 });
    expect(report?.hostNorm).toBeGreaterThan(0);
  });

  it("validates but records nothing for a seed without a session, as ReportGradients does", async () => {
    harness = await startHarness();
    await call(harness.client, harness.client.applyCommand, { command: germinate(harness.clock, "lonely") });
    const stand: ParameterProjection = { paramKey: "w", numel: 100n, indices: Array.from({ length: 100 }, (_, i) => BigInt(i)), scale: 1 };
    const accepted = (await sketch(harness, [sketchOf(stand, HOST, gradient(100, 1)), sketchOf(stand, SEED, gradient(100, 1))], "lonely")).report;
    expect(accepted).toMatchObject({ seedId: "lonely", collecting: false, hostNorm: 0, dotProduct: 0, isolated: true, seedViolations: 0 });
    await expect(sketch(harness, [{ ...sketchOf(stand, HOST, gradient(100, 1)), sumSquares: -2 }], "lonely")).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    await expect(sketch(harness, [{ ...sketchOf(stand, HOST, gradient(100, 1)), sampledValues: Buffer.alloc(8) }], "lonely")).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringContaining("2 sampled values, but the projection has 100"),
    });
  });

  const good = (p: ParameterProjection, side: GradientSide = HOST): GradientSketch => sketchOf(p, side, gradient(Number(p.numel), 7));
  type Case = [string, (p: ParameterProjection) => GradientSketch[], number, string, Record<string, string>?, string?];
  const cases: Case[] = [
    ["exact mode", (p) => [good(p)], status.FAILED_PRECONDITION, "exact mode needs full gradients", { KASMINA_PROJECTION_SAMPLES: "0" }],
    ["a parameter without a projection", (p) => [good(p), { ...good(p), paramKey: "unprojected" }], status.FAILED_PRECONDITION, `param "unprojected"`],
    ["a projection of another numel", (p) => [{ ...good(p), numel: 999n }], status.FAILED_PRECONDITION, "with numel 999 (its projection has numel 1000)"],
    ["too few sampled values", (p) => [{ ...good(p), sampledValues: good(p).sampledValues.subarray(0, 255 * 4) }], status.INVALID_ARGUMENT, "255 sampled values, but the projection has 256"],
    ["too many sampled values", (p) => [{ ...good(p), sampledValues: Buffer.concat([good(p).sampledValues, f32(new Float32Array(1))]) }], status.INVALID_ARGUMENT, "257 sampled values"],
    ["bytes that are not float32s", (p) => [{ ...good(p), sampledValues: good(p).sampledValues.subarray(0, 10) }], status.INVALID_ARGUMENT, "not a whole number of float32s"],
    ["a NaN sampled value", (p) => [{ ...good(p), sampledValues: f32(new Float32Array(256).fill(Number.NaN)) }], status.INVALID_ARGUMENT, "not finite"],
    ["an infinite sampled value", (p) => [{ ...good(p), sampledValues: f32(new Float32Array(256).fill(Number.POSITIVE_INFINITY)) }], status.INVALID_ARGUMENT, "not finite"],
    ["a NaN sum_squares", (p) => [{ ...good(p), sumSquares: Number.NaN }], status.INVALID_ARGUMENT, "sum_squares NaN must be finite and non-negative"],
    ["an infinite sum_squares", (p) => [{ ...good(p), sumSquares: Number.POSITIVE_INFINITY }], status.INVALID_ARGUMENT, "must be finite"],
    ["a negative sum_squares", (p) => [{ ...good(p), sumSquares: -1 }], status.INVALID_ARGUMENT, "sum_squares -1"],
    ["a sum_squares below its own samples'", (p) => [{ ...good(p), sumSquares: 1e-3 }], status.INVALID_ARGUMENT, "below the sampled values"],
    ["an unspecified side", (p) => [{ ...good(p), side: GradientSide.GRADIENT_SIDE_UNSPECIFIED }], status.INVALID_ARGUMENT, "side 0 is neither HOST (1) nor SEED (2)"],
    ["an undefined side", (p) => [{ ...good(p), side: 3 as GradientSide }], status.INVALID_ARGUMENT, "side 3"],
    ["a repeated (param_key, side)", (p) => [good(p), good(p, SEED), good(p)], status.INVALID_ARGUMENT, "sketch 3 (param \"w\", HOST): this (param_key, side) already appeared"],
    ["an empty param_key", (p) => [{ ...good(p), paramKey: "" }], status.INVALID_ARGUMENT, "param_key is empty"],
    ["no sketches", () => [], status.INVALID_ARGUMENT, "sketches is empty"],
    ["an empty seed_id", (p) => [good(p)], status.INVALID_ARGUMENT, "seed_id must not be empty", {}, ""],
    ["an unknown seed", (p) => [good(p)], status.NOT_FOUND, "is not managed", {}, "nobody"],
  ];

  it.each(cases)("refuses %s, changing nothing", async (_name, build, code, text, env = {}, seedId = "s") => {
    harness = await collectingSeed(env);
    // In exact mode there is no projection to ask for; the sketch is built from a stand-in one.
    const projection: ParameterProjection =
      env["KASMINA_PROJECTION_SAMPLES"] === "0"
        ? { paramKey: "w", numel: 1000n, indices: Array.from({ length: 256 }, (_, i) => BigInt(i)), scale: 1000 / 256 }
        : (await project(harness, [{ paramKey: "w", numel: 1000n }])).projections[0];
    if (env["KASMINA_PROJECTION_SAMPLES"] !== "0") {
      // A host sample waits in the stash: a refused pass must neither pair nor replace it.
      await sketch(harness, [good(projection)]);
    }
    const before = await stats(harness);
    await expect(sketch(harness, build(projection), seedId)).rejects.toMatchObject({ code, details: expect.stringContaining(text) });
    expect(await stats(harness)).toEqual(before);
    if (env["KASMINA_PROJECTION_SAMPLES"] !== "0") {
      const after = (await sketch(harness, [good(projection, SEED)])).report;
      const ownDot = (await stats(harness))?.dotProduct;
      expect(after?.dotProduct).toBe(ownDot);
      expect(after?.dotProduct).toBeGreaterThan(0); // good() sends the same gradient on both sides
    }
  });
});
