// Reduction backends agree with each other, tfjs backends leak no tensors, and the selector's
// fallbacks and errors behave as the server's start-up expects.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  GradientSide,
  IsolationSession,
  gpuVisible,
  jsBackend,
  loadTfjsBackend,
  partialFisherYates,
  seededRandom,
  selectBackend,
  type ReductionBackend,
  type TfjsBackendKind,
} from "../../src/isolation/index.js";

const tfjsBackends: Partial<Record<TfjsBackendKind, ReductionBackend>> = {};

beforeAll(async () => {
  tfjsBackends.wasm = await loadTfjsBackend("wasm", { minDeviceElements: 0, batchBytes: 4096 });
  tfjsBackends["tfjs-cpu"] = await loadTfjsBackend("tfjs-cpu", { minDeviceElements: 0 });
  for (const kind of ["tensorflow", "tensorflow-gpu"] as const) {
    try {
      tfjsBackends[kind] = await loadTfjsBackend(kind, { minDeviceElements: 0 });
    } catch {
      // Not installable on this machine (tfjs-node downloads libtensorflow); covered where present.
    }
  }
});

function randomArray(n: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (random() - 0.5) * 8);
}

function exactSumSquares(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v * v;
  return s;
}

describe("reduction backends agree with a plain double reference", () => {
  const sizes = [0, 1, 3, 4, 5, 1023, 1024, 1025, 4097, 100_003];
  it.each(["js", "wasm", "tfjs-cpu", "tensorflow", "tensorflow-gpu"])("%s", (name) => {
    const backend = name === "js" ? jsBackend : tfjsBackends[name as TfjsBackendKind];
    if (backend === undefined) return; // not available in this run
    const arrays = sizes.map((n, i) => randomArray(n, i + 1));
    const others = sizes.map((n, i) => randomArray(n, i + 100));
    // float32 row sums: error bounded relative to Σ|terms| (a dot can cancel to near zero).
    const close = (got: number, want: number, magnitude = Math.abs(want)): void =>
      expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-6 * magnitude + 1e-9);
    const sums = backend.sumSquaresBatch(arrays);
    const dots = backend.dotBatch(arrays.map((a, i) => [a, others[i]] as const));
    arrays.forEach((a, i) => {
      const want = exactSumSquares(a);
      close(sums[i], want);
      close(backend.sumSquares(a), want);
      let d = 0;
      let magnitude = 0;
      for (let k = 0; k < a.length; k++) {
        d += a[k] * others[i][k];
        magnitude += Math.abs(a[k] * others[i][k]);
      }
      close(dots[i], d, magnitude);
      close(backend.dot(a, others[i]), d, magnitude);
    });
    // Ranges
    const a = arrays[8];
    let want = 0;
    for (let k = 10; k < 3000; k++) want += a[k] * a[k];
    close(backend.sumSquares(a, 10, 3000), want);
    expect(() => backend.dot(new Float32Array(3), new Float32Array(4))).toThrow("length mismatch");
  });
});

describe("tfjs backends do not leak tensors", () => {
  it.each(["wasm", "tfjs-cpu", "tensorflow", "tensorflow-gpu"] as const)("%s: numTensors after 1,000 passes equals after 1", (kind) => {
    const backend = tfjsBackends[kind];
    if (backend === undefined) return;
    const grads = [randomArray(3000, 1), randomArray(3000, 2), randomArray(700, 3)];
    const exact = new IsolationSession({ backend, projectionSamples: 0 });
    const projected = new IsolationSession({ backend, projectionSamples: 64 });
    exact.open();
    projected.open();
    const onePass = (): void => {
      for (const session of [exact, projected]) {
        const pass = session.beginPass();
        for (const [i, g] of grads.entries()) {
          for (const side of [GradientSide.HOST, GradientSide.SEED]) {
            const half = g.length >> 1;
            pass.feed({ paramKey: `p${i}`, side, numel: g.length, offset: 0, values: g.subarray(0, half) });
            pass.feed({ paramKey: `p${i}`, side, numel: g.length, offset: half, values: g.subarray(half) });
          }
        }
        pass.commit();
      }
    };
    onePass();
    const after1 = tf.memory().numTensors;
    for (let i = 1; i < 1000; i++) onePass();
    expect(tf.memory().numTensors).toBe(after1);
    expect(exact.stats().dotProduct).toBeGreaterThan(0);
  });
});

describe("selectBackend", () => {
  const unavailable = (kind: string): Promise<ReductionBackend> => Promise.reject(new Error(`Cannot find package '${kind}'`));

  it("js is always available", async () => {
    const logs: string[] = [];
    expect((await selectBackend("js", (l) => logs.push(l))).name).toBe("js");
    expect(logs).toEqual([]);
  });

  it("auto without a GPU falls back to js, logging once per failed backend with the reason", async () => {
    const logs: string[] = [];
    const tried: string[] = [];
    const backend = await selectBackend("auto", (l) => logs.push(l), {
      gpuVisible: () => false,
      load: (kind) => {
        tried.push(kind);
        return unavailable(kind);
      },
    });
    expect(backend.name).toBe("js");
    expect(tried).toEqual([]);
    expect(logs).toEqual([]);
  });

  it("auto with a GPU tries tensorflow-gpu first, and logs its failure once", async () => {
    const logs: string[] = [];
    const backend = await selectBackend("auto", (l) => logs.push(l), { gpuVisible: () => true, load: unavailable });
    expect(backend.name).toBe("js");
    expect(logs).toEqual([
      `isolation backend "tensorflow-gpu" unavailable, falling back to js: Cannot find package 'tensorflow-gpu'`,
    ]);
  });

  it("auto returns tensorflow-gpu when it loads", async () => {
    const fake: ReductionBackend = { ...jsBackend, name: "tensorflow-gpu" };
    const backend = await selectBackend("auto", () => undefined, { gpuVisible: () => true, load: () => Promise.resolve(fake) });
    expect(backend).toBe(fake);
  });

  it("an explicit backend that cannot load is an error naming it and the reason", async () => {
    await expect(selectBackend("tensorflow", () => undefined)).rejects.toThrow(
      /^isolation backend "tensorflow" is not available: Cannot find package '@tensorflow\/tfjs-node'/,
    );
    await expect(selectBackend("tensorflow-gpu", () => undefined, { load: unavailable })).rejects.toThrow(
      `isolation backend "tensorflow-gpu" is not available: Cannot find package 'tensorflow-gpu'`,
    );
  });

  it("wasm loads when asked for explicitly", async () => {
    expect((await selectBackend("wasm", () => undefined)).name).toBe("wasm");
  });

  it("gpuVisible looks for /dev/nvidiaN and honours CUDA_VISIBLE_DEVICES", () => {
    const dev = mkdtempSync(join(tmpdir(), "kas-dev-"));
    expect(gpuVisible({}, dev)).toBe(false);
    writeFileSync(join(dev, "nvidiactl"), "");
    expect(gpuVisible({}, dev)).toBe(false);
    writeFileSync(join(dev, "nvidia0"), "");
    expect(gpuVisible({}, dev)).toBe(true);
    expect(gpuVisible({ CUDA_VISIBLE_DEVICES: "" }, dev)).toBe(false);
    expect(gpuVisible({ CUDA_VISIBLE_DEVICES: "-1" }, dev)).toBe(false);
    expect(gpuVisible({ CUDA_VISIBLE_DEVICES: "0" }, dev)).toBe(true);
    expect(gpuVisible({}, join(dev, "missing"))).toBe(false);
  });
});

describe("projection sampler", () => {
  it("draws min(samples, numel) distinct in-range indices", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 300 }), fc.integer(), (numel, samples, seed) => {
        const k = Math.min(samples, numel);
        const idx = partialFisherYates(numel, k, seededRandom(seed));
        expect(idx).toHaveLength(k);
        expect(new Set(idx).size).toBe(k);
        for (const i of idx) expect(Number.isInteger(i) && i >= 0 && i < numel).toBe(true);
      }),
    );
  });

  it("is uniform: every position of a small parameter is drawn about equally often", () => {
    const counts = new Array<number>(10).fill(0);
    const random = seededRandom(11);
    for (let t = 0; t < 20_000; t++) for (const i of partialFisherYates(10, 3, random)) counts[i]++;
    for (const c of counts) expect(Math.abs(c - 6000)).toBeLessThan(300); // expected 20000·3/10
  });

  it("handles parameters far larger than memory would allow densely", () => {
    const idx = partialFisherYates(2 ** 40, 256, seededRandom(1));
    expect(new Set(idx).size).toBe(256);
    expect(Math.max(...idx)).toBeLessThan(2 ** 40);
  });

  it("the session asks once per key and rejects a bad sampler", () => {
    const calls: string[] = [];
    const session = new IsolationSession({
      projectionSamples: 4,
      sampler: { sample: (key, numel, samples) => (calls.push(key), partialFisherYates(numel, Math.min(numel, samples), Math.random)) },
    });
    session.open();
    const g = new Float32Array(10);
    session.observe("host", "a", g);
    session.close();
    session.open();
    session.observe("seed", "a", g);
    expect(calls).toEqual(["a"]);
    const bad = new IsolationSession({ projectionSamples: 4, sampler: { sample: () => [1, 1, 2, 3] } });
    bad.open();
    expect(() => bad.observe("host", "x", g)).toThrow('projection sampler returned an invalid or repeated index 1 for "x" (numel 10)');
  });
});

describe("chunk coverage (property)", () => {
  it("any split of any parameters, fed in any order, commits the same accumulators as one chunk each", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 4 }),
        fc.integer(),
        (numels, seed) => {
          const random = seededRandom(seed);
          const grads = numels.map((n) => Float32Array.from({ length: n }, () => random() - 0.5));
          const whole = new IsolationSession({ projectionSamples: 0 });
          const split = new IsolationSession({ projectionSamples: 0 });
          whole.open();
          split.open();
          const wp = whole.beginPass();
          const chunks: { key: string; side: number; offset: number; values: Float32Array; numel: number }[] = [];
          grads.forEach((g, i) => {
            for (const side of [GradientSide.HOST, GradientSide.SEED]) {
              wp.feed({ paramKey: `p${i}`, side, numel: g.length, offset: 0, values: g });
              for (let at = 0; at < g.length; ) {
                const len = 1 + Math.floor(random() * 40);
                chunks.push({ key: `p${i}`, side, offset: at, values: g.subarray(at, at + len), numel: g.length });
                at += len;
              }
            }
          });
          chunks.sort(() => random() - 0.5);
          const sp = split.beginPass();
          for (const c of chunks) sp.feed({ paramKey: c.key, side: c.side, numel: c.numel, offset: c.offset, values: c.values });
          const a = wp.commit().snapshot;
          const b = sp.commit().snapshot;
          expect(Math.abs(a.hostNormSq - b.hostNormSq)).toBeLessThan(1e-9);
          expect(Math.abs(a.dotProduct - b.dotProduct)).toBeLessThan(1e-9);
          expect(b.dotProduct).toBeCloseTo(b.hostNormSq, 9); // each shared parameter paired with itself
        },
      ),
      { numRuns: 200 },
    );
  });
});
