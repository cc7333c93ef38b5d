// Throughput of the gradient-isolation engine: gradient bytes (float32) per second for one streamed
// backward pass (Σg² of every chunk + projection gather + commit), per backend, against the read
// bandwidth of this machine measured in the same run (a plain 4-accumulator sum over the same
// arrays: the floor any reduction has to pay). Run: npm run bench:isolation

import {
  GradientSide,
  IsolationSession,
  jsBackend,
  loadTfjsBackend,
  randomProjectionSampler,
  seededRandom,
  type ReductionBackend,
  type TfjsBackendKind,
} from "../src/isolation/index.js";

const SIZES = [1e6, 1e7];
const CHUNK = 262_144; // 1 MiB of float32 per chunk, a typical ReportGradients message
const BUDGET_MS = 1_500; // per (backend, size) measurement

interface Workload {
  readonly elements: number;
  /** Two shared parameters, each sent by host and seed: [key, side, offset, values]. */
  readonly chunks: { key: string; side: number; numel: number; offset: number; values: Float32Array }[];
}

function workload(elements: number): Workload {
  const random = seededRandom(7);
  const perSide = elements / 4;
  const chunks: Workload["chunks"] = [];
  for (const key of ["shared:a", "shared:b"]) {
    for (const side of [GradientSide.HOST, GradientSide.SEED]) {
      const grad = new Float32Array(perSide);
      for (let i = 0; i < perSide; i++) grad[i] = random() - 0.5;
      for (let offset = 0; offset < perSide; offset += CHUNK) {
        chunks.push({ key, side, numel: perSide, offset, values: grad.subarray(offset, Math.min(perSide, offset + CHUNK)) });
      }
    }
  }
  return { elements, chunks };
}

/** Median seconds per call of fn, repeated for about BUDGET_MS (at least 3 times). */
function time(fn: () => void): number {
  fn(); // warm-up (JIT, tfjs kernels, wasm heap growth)
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < 3 || (performance.now() - start < BUDGET_MS && samples.length < 200)) {
    const t0 = performance.now();
    fn();
    samples.push((performance.now() - t0) / 1000);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

let sink = 0;

/** The read-bandwidth probe: one pass over the values, no squaring, four accumulators. */
function plainSum(values: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (const last = values.length - 3; i < last; i += 4) {
    s0 += values[i];
    s1 += values[i + 1];
    s2 += values[i + 2];
    s3 += values[i + 3];
  }
  for (; i < values.length; i++) s0 += values[i];
  return s0 + s1 + (s2 + s3);
}

function readBandwidth(w: Workload): number {
  const seconds = time(() => {
    for (const { values } of w.chunks) sink += plainSum(values);
  });
  return (w.elements * 4) / seconds / 1e9;
}

function passThroughput(backend: ReductionBackend, w: Workload): number {
  const session = new IsolationSession({ backend, projectionSamples: 256, sampler: randomProjectionSampler(seededRandom(1)) });
  session.open();
  const seconds = time(() => {
    const pass = session.beginPass();
    for (const c of w.chunks) pass.feed({ paramKey: c.key, side: c.side, numel: c.numel, offset: c.offset, values: c.values });
    sink += pass.commit().snapshot.dotProduct;
  });
  return (w.elements * 4) / seconds / 1e9;
}

async function main(): Promise<void> {
  const backends: ReductionBackend[] = [jsBackend];
  for (const kind of ["wasm", "tfjs-cpu", "tensorflow", "tensorflow-gpu"] satisfies TfjsBackendKind[]) {
    try {
      backends.push(await loadTfjsBackend(kind));
    } catch (err) {
      console.log(`(${kind}: not available: ${err instanceof Error ? err.message.split("\n")[0] : String(err)})`);
    }
  }
  console.log(`node ${process.version}, ${CHUNK * 4} B chunks, projection 256, two shared parameters`);
  for (const elements of SIZES) {
    const w = workload(elements);
    // Measured before and after the backends; the better figure is the bandwidth (2 shared cores are noisy).
    const before = readBandwidth(w);
    const results = backends.map((backend) => ({ name: backend.name, gbs: passThroughput(backend, w) }));
    const read = Math.max(before, readBandwidth(w));
    console.log(`\n${elements.toExponential(0)} elements (${(elements * 4) / 1e6} MB of gradients per pass)`);
    console.log(`  read bandwidth (plain Float32Array sum): ${read.toFixed(2)} GB/s`);
    for (const { name, gbs } of results) {
      console.log(`  ${name.padEnd(15)} ${gbs.toFixed(3).padStart(7)} GB/s   ratio to read bandwidth ${(gbs / read).toFixed(2)}`);
    }
  }
  if (sink === 42) console.log(""); // keeps the sums observable so nothing is optimised away
}

await main();
