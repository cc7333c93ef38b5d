// KAS-H1-002 benchmark: pushes into a full per-seed queue.
// Prints (1) the time for n and 10n single-event pushes into a full SeedQueue and their ratio
// (≈ 10 means cost per push is constant, i.e. linear overall), and (2) the speed-up over the
// original's front-removal queue (Array.shift once per dropped event, spec §10.1) on the same
// workloads, all measured in this run. Run: npm run bench:queue

import { performance } from "node:perf_hooks";
import { MAX_PENDING_EVENTS, SeedQueue } from "../src/kasmina/seed-queue.js";

interface BenchEvent {
  readonly description: string;
  readonly dropped?: number;
}

const N = 1_000_000;
const BATCH = 2_000;
const BATCH_ROUNDS = 200;

const events: BenchEvent[] = Array.from({ length: 1024 }, (_, i) => ({ description: `event-${i}` }));
const batch: BenchEvent[] = Array.from({ length: BATCH }, (_, i) => ({ description: `batch-${i}` }));

function newQueue(): SeedQueue<BenchEvent> {
  const q = new SeedQueue<BenchEvent>({
    makeMarker: (dropped) => ({ description: "seed_queue_dropped", dropped }),
    markerCount: (e) => e.dropped,
  });
  q.pushAll(events.slice(0, MAX_PENDING_EVENTS));
  return q;
}

/** The original's enqueue (spec §10.1): pop from the front one at a time, then append all. */
class NaiveQueue {
  items: BenchEvent[] = events.slice(0, MAX_PENDING_EVENTS);
  push(incoming: readonly BenchEvent[]): void {
    const total = this.items.length + incoming.length;
    if (total > MAX_PENDING_EVENTS) {
      const dropped = total - MAX_PENDING_EVENTS;
      for (let i = 0; i < dropped && this.items.length > 0; i += 1) this.items.shift();
      this.items.push({ description: "seed_queue_dropped", dropped });
    }
    for (const e of incoming) this.items.push(e);
  }
}

function time(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

function singlePushes(count: number): number {
  const q = newQueue();
  const ms = time(() => {
    for (let i = 0; i < count; i += 1) q.push(events[i & 1023]!);
  });
  if (q.length !== MAX_PENDING_EVENTS) throw new Error("queue not bounded");
  return ms;
}

function naiveSinglePushes(count: number): number {
  const q = new NaiveQueue();
  const one: BenchEvent[] = [events[0]!];
  return time(() => {
    for (let i = 0; i < count; i += 1) {
      one[0] = events[i & 1023]!;
      q.push(one);
    }
  });
}

function batchPushes(): number {
  const q = newQueue();
  return time(() => {
    for (let i = 0; i < BATCH_ROUNDS; i += 1) q.pushAll(batch);
  });
}

function naiveBatchPushes(): number {
  const q = new NaiveQueue();
  return time(() => {
    for (let i = 0; i < BATCH_ROUNDS; i += 1) q.push(batch);
  });
}

function best(runs: number, fn: () => number): number {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i += 1) min = Math.min(min, fn());
  return min;
}

// Warm up both implementations so the JIT has compiled them before timing.
singlePushes(N);
naiveSinglePushes(N);
batchPushes();
naiveBatchPushes();

const tN = best(5, () => singlePushes(N));
const t10N = best(5, () => singlePushes(10 * N));
const naiveN = best(5, () => naiveSinglePushes(N));
const tBatch = best(5, batchPushes);
const naiveBatch = best(3, naiveBatchPushes);

const fmt = (ms: number): string => `${ms.toFixed(2)} ms`;
console.log(`SeedQueue, single-event pushes into a full queue (capacity ${MAX_PENDING_EVENTS}, best of 5):`);
console.log(`  n   = ${N.toLocaleString("en")}: ${fmt(tN)}`);
console.log(`  10n = ${(10 * N).toLocaleString("en")}: ${fmt(t10N)}`);
console.log(`  ratio 10n / n = ${(t10N / tN).toFixed(2)} (≈ 10 means linear)`);
console.log(`Naive front-removal queue (Array.shift per dropped event), same n:`);
console.log(`  n   = ${N.toLocaleString("en")}: ${fmt(naiveN)}  → SeedQueue speed-up ×${(naiveN / tN).toFixed(1)}`);
console.log(`Batches of ${BATCH} events, ${BATCH_ROUNDS} pushes (where the original's queue grows to 1 + batch):`);
console.log(`  SeedQueue: ${fmt(tBatch)}   naive: ${fmt(naiveBatch)}  → speed-up ×${(naiveBatch / tBatch).toFixed(1)}`);
