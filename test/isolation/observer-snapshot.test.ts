// KAS-H1-005: host and seed share one observer routine. Before/after snapshot on synthetic gradients
// with a fixed sampling seed, in exact and projection mode: the session must match (a) a literal
// transcription of spec §13.3 with separate host and seed routines (the "before" shape) and (b)
// pinned numbers, so any change in the shared routine's results shows up.

import { describe, expect, it } from "vitest";
import {
  IsolationSession,
  randomProjectionSampler,
  seededRandom,
  type ObserverSide,
  type ProjectionSampler,
} from "../../src/isolation/index.js";

const PARAMS = [
  { key: "shared:a", numel: 1000, sides: ["host", "seed"] },
  { key: "shared:b", numel: 50, sides: ["host", "seed"] },
  { key: "host:c", numel: 300, sides: ["host"] },
  { key: "seed:d", numel: 40, sides: ["seed"] },
] as const;

type Call = { side: ObserverSide; key: string; grad: Float32Array };

/** Three backward passes; pass 2 sends only the host side of shared:a (its stash waits for pass 3). */
function passes(): Call[][] {
  const random = seededRandom(2024);
  const out: Call[][] = [];
  for (let p = 0; p < 3; p++) {
    const calls: Call[] = [];
    for (const param of PARAMS) {
      for (const side of param.sides) {
        if (p === 1 && param.key === "shared:a" && side === "seed") continue;
        const grad = new Float32Array(param.numel);
        for (let i = 0; i < grad.length; i++) grad[i] = (random() - 0.5) * 4;
        calls.push({ side, key: param.key, grad });
      }
    }
    out.push(calls);
  }
  return out;
}

/** spec §13.3 transcribed literally: one routine per side, doubles throughout. */
class ReferenceMonitor {
  hostNormSq = 0;
  seedNormSq = 0;
  dot = 0;
  private readonly hostStash = new Map<string, number[]>();
  private readonly seedStash = new Map<string, number[]>();
  private readonly projections = new Map<string, { indices: number[]; scale: number } | null>();

  constructor(
    private readonly samples: number,
    private readonly sampler: ProjectionSampler,
  ) {}

  private projection(key: string, numel: number): { indices: number[]; scale: number } | null {
    if (!this.projections.has(key)) {
      if (this.samples <= 0 || numel === 0) this.projections.set(key, null);
      else {
        const indices = Array.from(this.sampler.sample(key, numel, this.samples));
        this.projections.set(key, { indices, scale: numel / indices.length });
      }
    }
    return this.projections.get(key) ?? null;
  }

  hostHook(key: string, g: Float32Array): void {
    this.hostNormSq += g.reduce((s, v) => s + v * v, 0);
    const proj = this.projection(key, g.length);
    const mine = proj ? proj.indices.map((i) => g[i]) : Array.from(g);
    const theirs = this.seedStash.get(key);
    if (theirs) {
      this.dot += mine.reduce((s, v, i) => s + v * theirs[i], 0) * (proj ? proj.scale : 1);
      this.seedStash.delete(key);
    } else this.hostStash.set(key, mine);
  }

  seedHook(key: string, g: Float32Array): void {
    this.seedNormSq += g.reduce((s, v) => s + v * v, 0);
    const proj = this.projection(key, g.length);
    const mine = proj ? proj.indices.map((i) => g[i]) : Array.from(g);
    const theirs = this.hostStash.get(key);
    if (theirs) {
      this.dot += mine.reduce((s, v, i) => s + v * theirs[i], 0) * (proj ? proj.scale : 1);
      this.hostStash.delete(key);
    } else this.seedStash.set(key, mine);
  }
}

function run(samples: number, viaPasses: boolean): { hostNormSq: number; seedNormSq: number; dotProduct: number }[] {
  const session = new IsolationSession({ projectionSamples: samples, sampler: randomProjectionSampler(seededRandom(99)) });
  session.open();
  const reference = new ReferenceMonitor(samples, randomProjectionSampler(seededRandom(99)));
  const snapshots: { hostNormSq: number; seedNormSq: number; dotProduct: number }[] = [];
  for (const calls of passes()) {
    if (viaPasses) {
      const pass = session.beginPass();
      for (const c of calls) pass.feed({ paramKey: c.key, side: c.side === "host" ? 1 : 2, numel: c.grad.length, offset: 0, values: c.grad });
      pass.commit();
    }
    for (const c of calls) {
      if (!viaPasses) session.observe(c.side, c.key, c.grad);
      if (c.side === "host") reference.hostHook(c.key, c.grad);
      else reference.seedHook(c.key, c.grad);
    }
    const got = session.accumulators();
    for (const [name, want] of [
      ["hostNormSq", reference.hostNormSq],
      ["seedNormSq", reference.seedNormSq],
      ["dotProduct", reference.dot],
    ] as const) {
      expect(Math.abs(got[name] - want), name).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(want)));
    }
    snapshots.push(got);
  }
  return snapshots;
}

/** Rounded to 10 significant digits so the pinned values do not depend on summation order. */
function pinned(rows: { hostNormSq: number; seedNormSq: number; dotProduct: number }[]): string[] {
  return rows.map((r) => [r.hostNormSq, r.seedNormSq, r.dotProduct].map((v) => v.toPrecision(10)).join(" "));
}

describe("KAS-H1-005 single observer: snapshot on synthetic gradients", () => {
  it("exact mode", () => {
    const rows = run(0, false);
    expect(pinned(run(0, true))).toEqual(pinned(rows));
    expect(pinned(rows)).toMatchInlineSnapshot(`
      [
        "1760.612303 1510.394512 11.81663305",
        "3560.527915 1620.107943 9.317281785",
        "5403.552696 3066.457733 -44.16126441",
      ]
    `);
  });

  it("projection mode (16 samples, fixed sampling seed)", () => {
    const rows = run(16, false);
    expect(pinned(run(16, true))).toEqual(pinned(rows));
    expect(pinned(rows)).toMatchInlineSnapshot(`
      [
        "1760.612303 1510.394512 -383.0462538",
        "3560.527915 1620.107943 -386.8184819",
        "5403.552696 3066.457733 -373.2603781",
      ]
    `);
  });

  it("host and seed are mirror images: swapping every side swaps the norms and keeps the dot", () => {
    const swap = (side: ObserverSide): ObserverSide => (side === "host" ? "seed" : "host");
    const a = new IsolationSession({ projectionSamples: 16, sampler: randomProjectionSampler(seededRandom(5)) });
    const b = new IsolationSession({ projectionSamples: 16, sampler: randomProjectionSampler(seededRandom(5)) });
    a.open();
    b.open();
    for (const calls of passes()) {
      for (const c of calls) {
        a.observe(c.side, c.key, c.grad);
        b.observe(swap(c.side), c.key, c.grad);
      }
    }
    expect(b.accumulators()).toEqual({
      hostNormSq: a.accumulators().seedNormSq,
      seedNormSq: a.accumulators().hostNormSq,
      dotProduct: a.accumulators().dotProduct,
    });
  });
});
