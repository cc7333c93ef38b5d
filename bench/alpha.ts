// KAS-H1-004 benchmark: AlphaSchedule.value() (plain math) against the original's approach,
// a float32 scalar tensor sigmoid per call (here tfjs on its cpu backend, tensors disposed).
// Both are measured in this run for a fixed wall-clock budget. Run: npm run bench:alpha

import * as tf from "@tensorflow/tfjs";
import { performance } from "node:perf_hooks";
import { AlphaSchedule } from "../src/kasmina/alpha-schedule.js";

const BUDGET_MS = 3_000;
const TOTAL_STEPS = 20;
const TEMPERATURE = 2.0;

/** The pre-hardening computation: sigmoid of a float32 scalar tensor, read back to a number. */
function tensorAlpha(step: number): number {
  const scaled = (step - TOTAL_STEPS / 2) / Math.max(TEMPERATURE, 1e-6);
  const input = tf.scalar(scaled, "float32");
  const output = tf.sigmoid(input);
  const value = output.dataSync()[0]!;
  input.dispose();
  output.dispose();
  return value;
}

/** Calls per second of `fn` over `budgetMs`, checking the clock every `chunk` calls. */
function rate(fn: (step: number) => number, budgetMs: number, chunk: number): { perSecond: number; sink: number } {
  let calls = 0;
  let sink = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < budgetMs) {
    for (let i = 0; i < chunk; i += 1) sink += fn((calls + i) % 40);
    calls += chunk;
    elapsed = performance.now() - start;
  }
  return { perSecond: (calls / elapsed) * 1000, sink };
}

await tf.setBackend("cpu");
await tf.ready();

const schedule = new AlphaSchedule({ totalSteps: TOTAL_STEPS, temperature: TEMPERATURE });
const plain = (step: number): number => schedule.value(step);

// Same values (float32 rounding apart), so the comparison is like for like.
for (let step = 0; step <= 40; step += 1) {
  if (Math.abs(plain(step) - tensorAlpha(step)) > 1e-6) throw new Error(`mismatch at step ${step}`);
}

rate(plain, 200, 10_000); // warm-up
rate(tensorAlpha, 200, 100);
const fast = rate(plain, BUDGET_MS, 100_000);
const slow = rate(tensorAlpha, BUDGET_MS, 100);
const leaked = tf.memory().numTensors;

const fmt = (n: number): string => Math.round(n).toLocaleString("en");
console.log(`AlphaSchedule (total_steps ${TOTAL_STEPS}, temperature ${TEMPERATURE}), ${BUDGET_MS} ms each, tfjs backend "${tf.getBackend()}":`);
console.log(`  plain math 0.5·(1+tanh(x/2)): ${fmt(fast.perSecond)} calls/s`);
console.log(`  tfjs scalar tensor sigmoid:   ${fmt(slow.perSecond)} calls/s`);
console.log(`  ratio: ×${(fast.perSecond / slow.perSecond).toFixed(0)}   (tensors left alive: ${leaked}; checksum ${(fast.sink + slow.sink).toFixed(1)})`);
