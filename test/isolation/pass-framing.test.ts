// Chunk framing: each rejected stream reports its first problem precisely and changes nothing.

import { describe, expect, it } from "vitest";
import {
  GradientFramingError,
  GradientSide,
  IsolationSession,
  loadTfjsBackend,
  seededRandom,
  randomProjectionSampler,
  type GradientChunk,
  type GradientFramingCode,
  type IsolationSessionConfig,
} from "../../src/isolation/index.js";

const HOST = GradientSide.HOST;
const SEED = GradientSide.SEED;

function chunk(paramKey: string, side: number, numel: number, offset: number, values: number[]): GradientChunk {
  return { paramKey, side, numel, offset, values: Float32Array.from(values) };
}

function session(config: IsolationSessionConfig = {}): IsolationSession {
  const s = new IsolationSession({ sampler: randomProjectionSampler(seededRandom(3)), ...config });
  s.open();
  return s;
}

/** A session that already holds state: a host stash for "w" and non-zero norms. */
function primed(config: IsolationSessionConfig = {}): IsolationSession {
  const s = session(config);
  const pass = s.beginPass();
  pass.feed(chunk("w", HOST, 4, 0, [1, 2, 3, 4]));
  pass.feed(chunk("b", SEED, 2, 0, [5, 6]));
  pass.commit();
  return s;
}

function expectFraming(fn: () => unknown, code: GradientFramingCode, message: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(GradientFramingError);
  expect((caught as GradientFramingError).code).toBe(code);
  expect((caught as GradientFramingError).message).toBe(message);
}

const cases: { name: string; chunks: GradientChunk[]; code: GradientFramingCode; message: string; at: "feed" | "commit" }[] = [
  {
    name: "unknown side",
    chunks: [chunk("w", HOST, 4, 0, [1, 1, 1, 1]), chunk("w", GradientSide.UNSPECIFIED, 4, 0, [1, 1, 1, 1])],
    code: "unknown_side",
    message: 'chunk 2 (param "w"): side 0 is neither HOST (1) nor SEED (2)',
    at: "feed",
  },
  {
    name: "side out of the enum",
    chunks: [chunk("w", 7, 4, 0, [1, 1, 1, 1])],
    code: "unknown_side",
    message: 'chunk 1 (param "w"): side 7 is neither HOST (1) nor SEED (2)',
    at: "feed",
  },
  {
    name: "empty param key",
    chunks: [chunk("", HOST, 4, 0, [1, 1, 1, 1])],
    code: "empty_param_key",
    message: "chunk 1: param_key is empty",
    at: "feed",
  },
  {
    name: "numel mismatch across sides",
    chunks: [chunk("w", HOST, 4, 0, [1, 1, 1, 1]), chunk("w", SEED, 5, 0, [1, 1, 1, 1, 1])],
    code: "numel_mismatch",
    message: 'chunk 2 (param "w", SEED): numel 5 differs from 4 in chunk 1',
    at: "feed",
  },
  {
    name: "numel mismatch within a side",
    chunks: [chunk("w", HOST, 4, 0, [1, 1]), chunk("w", HOST, 6, 2, [1, 1])],
    code: "numel_mismatch",
    message: 'chunk 2 (param "w", HOST): numel 6 differs from 4 in chunk 1',
    at: "feed",
  },
  {
    name: "numel mismatch with an earlier pass",
    chunks: [chunk("b", HOST, 3, 0, [1, 1, 1])],
    code: "numel_mismatch",
    message: 'chunk 1 (param "b", HOST): numel 3 differs from 2 seen earlier in this session',
    at: "feed",
  },
  {
    name: "out of range",
    chunks: [chunk("w", HOST, 4, 0, [1, 1]), chunk("w", HOST, 4, 2, [1, 1, 1])],
    code: "out_of_range",
    message: 'chunk 2 (param "w", HOST, elements [2, 5)): exceeds numel 4',
    at: "feed",
  },
  {
    name: "negative offset",
    chunks: [chunk("w", HOST, 4, -1, [1])],
    code: "bad_integer",
    message: 'chunk 1 (param "w", HOST): offset -1 is not a non-negative safe integer',
    at: "feed",
  },
  {
    name: "numel beyond 2^53",
    chunks: [{ paramKey: "w", side: HOST, numel: 2n ** 60n, offset: 0, values: new Float32Array(1) }],
    code: "bad_integer",
    message: `chunk 1 (param "w", HOST): numel ${2n ** 60n} is not a non-negative safe integer`,
    at: "feed",
  },
  {
    name: "misaligned byte length",
    chunks: [{ paramKey: "w", side: HOST, numel: 4, offset: 0, values: new Uint8Array(6) }],
    code: "misaligned_values",
    message: 'chunk 1 (param "w", HOST): values are 6 bytes, not a whole number of float32s',
    at: "feed",
  },
  {
    name: "empty chunk of a non-empty parameter",
    chunks: [chunk("w", HOST, 4, 0, [])],
    code: "empty_chunk",
    message: 'chunk 1 (param "w", HOST, elements [0, 0)): no values (only a numel-0 parameter is sent as one empty chunk)',
    at: "feed",
  },
  {
    name: "overlap",
    chunks: [chunk("g", HOST, 8, 4, [1, 1, 1, 1]), chunk("g", HOST, 8, 0, [1, 1]), chunk("g", HOST, 8, 1, [1, 1, 1, 1])],
    code: "overlap",
    message: 'chunk 3 (param "g", HOST, elements [1, 5)): elements [1, 2) were already received',
    at: "feed",
  },
  {
    name: "duplicate chunk",
    chunks: [chunk("w", SEED, 4, 0, [1, 1, 1, 1]), chunk("w", SEED, 4, 0, [1, 1, 1, 1])],
    code: "overlap",
    message: 'chunk 2 (param "w", SEED, elements [0, 4)): elements [0, 4) were already received',
    at: "feed",
  },
  {
    name: "empty parameter sent twice",
    chunks: [chunk("e", HOST, 0, 0, []), chunk("e", HOST, 0, 0, [])],
    code: "overlap",
    message: 'chunk 2 (param "e", HOST, elements [0, 0)): this empty parameter was already sent',
    at: "feed",
  },
  {
    name: "gap in the middle",
    chunks: [chunk("g", HOST, 8, 0, [1, 1]), chunk("g", HOST, 8, 5, [1, 1, 1])],
    code: "incomplete",
    message: 'param "g" HOST: chunks cover 5 of 8 elements; elements [2, 5) are missing',
    at: "commit",
  },
  {
    name: "missing tail",
    chunks: [chunk("g", SEED, 8, 0, [1, 1, 1, 1])],
    code: "incomplete",
    message: 'param "g" SEED: chunks cover 4 of 8 elements; elements [4, 8) are missing',
    at: "commit",
  },
  {
    name: "missing head",
    chunks: [chunk("g", HOST, 8, 6, [1, 1])],
    code: "incomplete",
    message: 'param "g" HOST: chunks cover 2 of 8 elements; elements [0, 6) are missing',
    at: "commit",
  },
  {
    name: "NaN",
    chunks: [chunk("w", HOST, 4, 0, [1, 2]), chunk("w", HOST, 4, 2, [3, Number.NaN])],
    code: "non_finite",
    message: 'chunk 2 (param "w", HOST, elements [2, 4)): non-finite value NaN at element 3',
    at: "feed",
  },
  {
    name: "infinity",
    chunks: [chunk("v", SEED, 3, 0, [Number.NEGATIVE_INFINITY, 1, 1])],
    code: "non_finite",
    message: 'chunk 1 (param "v", SEED, elements [0, 3)): non-finite value -Infinity at element 0',
    at: "feed",
  },
];

describe("chunk framing errors", () => {
  for (const c of cases) {
    it(`${c.name}: rejected with its message, session unchanged`, () => {
      const s = primed();
      const before = s.snapshot();
      const pass = s.beginPass();
      const run = (): unknown => {
        for (const ch of c.chunks) pass.feed(ch);
        return pass.commit();
      };
      if (c.at === "commit") {
        for (const ch of c.chunks) pass.feed(ch);
        expectFraming(() => pass.commit(), c.code, c.message);
      } else {
        expectFraming(run, c.code, c.message);
      }
      expect(s.snapshot()).toEqual(before);
      // The dead pass keeps reporting its first problem, and abort is a harmless no-op.
      expectFraming(() => pass.feed(chunk("z", HOST, 1, 0, [1])), c.code, c.message);
      expectFraming(() => pass.commit(), c.code, c.message);
      pass.abort();
      // No stash was touched: host "w" still pairs with a later seed "w".
      const next = s.beginPass();
      next.feed(chunk("w", SEED, 4, 0, [1, 1, 1, 1]));
      expect(next.commit().snapshot.dotProduct).toBe(10 * (4 / 4));
    });
  }

  it("a chunk after a problem-free but wrong stream still reports the first problem only", () => {
    const s = session();
    const pass = s.beginPass();
    pass.feed(chunk("w", HOST, 4, 0, [1, 2]));
    expectFraming(() => pass.feed(chunk("w", HOST, 4, 1, [1, 1])), "overlap", 'chunk 2 (param "w", HOST, elements [1, 3)): elements [1, 2) were already received');
    expectFraming(() => pass.feed(chunk("w", GradientSide.UNSPECIFIED, 4, 0, [1])), "overlap", 'chunk 2 (param "w", HOST, elements [1, 3)): elements [1, 2) were already received');
  });

  it("with a batching backend, an earlier queued non-finite chunk wins over a later structural error", async () => {
    const wasm = await loadTfjsBackend("wasm", { minDeviceElements: 0, batchBytes: 1 << 20 });
    const s = session({ backend: wasm });
    const pass = s.beginPass();
    pass.feed(chunk("w", HOST, 4, 0, [1, Number.POSITIVE_INFINITY])); // queued, not yet reduced
    expectFraming(
      () => pass.feed(chunk("w", HOST, 4, 1, [1])),
      "non_finite",
      'chunk 1 (param "w", HOST, elements [0, 2)): non-finite value Infinity at element 1',
    );
    expect(s.snapshot().hostNormSq).toBe(0);
  });

  it("huge finite values overflow float32 on a device but are accepted with the exact double sum", async () => {
    const wasm = await loadTfjsBackend("wasm", { minDeviceElements: 0, batchBytes: 0 });
    const s = session({ backend: wasm });
    const pass = s.beginPass();
    pass.feed(chunk("w", HOST, 2, 0, [3e38, 3e38]));
    expect(pass.commit().snapshot.hostNormSq).toBeCloseTo(2 * Math.fround(3e38) ** 2, -60);
  });
});

describe("pass life cycle", () => {
  it("an aborted pass leaves no trace", () => {
    const s = primed();
    const before = s.snapshot();
    const pass = s.beginPass();
    pass.feed(chunk("w", SEED, 4, 0, [1, 1, 1, 1]));
    pass.feed(chunk("x", HOST, 2, 0, [9, 9]));
    pass.abort();
    expect(s.snapshot()).toEqual(before);
    expect(() => pass.commit()).toThrow("gradient pass is already aborted");
    // The stash from the primed pass is still there to be consumed.
    const next = s.beginPass();
    next.feed(chunk("w", SEED, 4, 0, [0, 0, 0, 1]));
    expect(next.commit().snapshot.dotProduct).toBe(4);
  });

  it("a committed pass cannot be fed again", () => {
    const s = session();
    const pass = s.beginPass();
    pass.commit();
    expect(() => pass.feed(chunk("w", HOST, 1, 0, [1]))).toThrow("gradient pass is already committed");
  });

  it("a pass committed while collection is disabled or the session closed records nothing", () => {
    const s = primed();
    const before = s.accumulators();
    const pass = s.beginPass();
    pass.feed(chunk("w", SEED, 4, 0, [1, 1, 1, 1]));
    s.disableCollection();
    const r = pass.commit();
    expect(r.applied).toBe(false);
    expect(s.accumulators()).toEqual(before);
    s.enableCollection();
    s.close();
    const closed = s.beginPass();
    closed.feed(chunk("w", SEED, 4, 0, [1, 1, 1, 1]));
    expect(closed.commit().applied).toBe(false);
    expect(s.accumulators()).toEqual({ hostNormSq: 0, seedNormSq: 0, dotProduct: 0 });
  });

  it("applies host before seed for each parameter whatever the chunk order", () => {
    // A seed stash for "w" from an earlier pass: the host side of the next pass consumes it, then the
    // seed side of that pass is stashed (the fixtures' hook order), even if seed chunks came first.
    const s = session({ projectionSamples: 0 });
    const first = s.beginPass();
    first.feed(chunk("w", SEED, 2, 0, [1, 0]));
    first.commit();
    const pass = s.beginPass();
    pass.feed(chunk("w", SEED, 2, 0, [0, 5]));
    pass.feed(chunk("w", HOST, 2, 0, [3, 7]));
    expect(pass.commit().snapshot.dotProduct).toBe(3); // [3,7]·[1,0]
    const third = s.beginPass();
    third.feed(chunk("w", HOST, 2, 0, [1, 1]));
    expect(third.commit().snapshot.dotProduct).toBe(3 + 5); // pairs with the stashed seed [0,5]
  });

  it("frozen_and_empty: a numel-0 shared parameter pairs in exact mode and contributes 0", () => {
    const s = session({ projectionSamples: 256 });
    const pass = s.beginPass();
    pass.feed(chunk("shared:empty", HOST, 0, 0, []));
    pass.feed(chunk("shared:empty", SEED, 0, 0, []));
    pass.feed(chunk("host:bias", HOST, 4, 0, [3, 3, 3, 3]));
    const r = pass.commit();
    expect(r.snapshot).toMatchObject({ hostNormSq: 36, seedNormSq: 0, dotProduct: 0, isolated: true });
    expect(r.elements).toBe(4);
  });

  it("an empty chunk of a numel-0 parameter must start at offset 0", () => {
    const pass = session().beginPass();
    expectFraming(
      () => pass.feed(chunk("e", SEED, 0, 1, [])),
      "out_of_range",
      'chunk 1 (param "e", SEED, elements [1, 1)): exceeds numel 0',
    );
  });

  it("overlapping passes commit in commit order", () => {
    const s = session({ projectionSamples: 0 });
    const a = s.beginPass();
    const b = s.beginPass();
    a.feed(chunk("w", HOST, 2, 0, [1, 2]));
    b.feed(chunk("w", SEED, 2, 0, [10, 100]));
    b.commit();
    expect(s.stats().dotProduct).toBe(0);
    a.commit();
    expect(s.stats().dotProduct).toBe(210);
    expect(s.snapshot().elementsProcessed).toBe(4);
  });
});

describe("isolationSessionFactory", () => {
  it("opens an active, collecting session per seed with the shared settings", async () => {
    const { isolationSessionFactory } = await import("../../src/isolation/index.js");
    const factory = isolationSessionFactory({ threshold: 0.5, projectionSamples: 0 });
    const a = factory.openSession("seed-a", [], []);
    const b = factory.openSession("seed-b", [], []);
    expect(a).not.toBe(b);
    expect(a.collecting).toBe(true);
    expect(a.threshold).toBe(0.5);
    expect(a.projectionSamples).toBe(0);
  });
});
