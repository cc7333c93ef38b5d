import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_PENDING_EVENTS, SeedQueue } from "../../src/kasmina/seed-queue.js";

// Test events: real events carry an id, markers carry the dropped count (as the
// `seed_queue_dropped` event carries `dropped`).
type Ev = { readonly kind: "event"; readonly id: number } | { readonly kind: "marker"; readonly dropped: number };

const ev = (id: number): Ev => ({ kind: "event", id });
const range = (from: number, to: number): Ev[] => Array.from({ length: to - from }, (_, i) => ev(from + i));

function queue(options: { capacity?: number } = {}) {
  const dropReports: number[] = [];
  const calls = { makeMarker: 0, markerCount: 0 };
  const q = new SeedQueue<Ev>({
    ...options,
    makeMarker: (dropped) => {
      calls.makeMarker += 1;
      return { kind: "marker", dropped };
    },
    markerCount: (e) => {
      calls.markerCount += 1;
      return e.kind === "marker" ? e.dropped : undefined;
    },
    onDropped: (n) => dropReports.push(n),
  });
  return { q, dropReports, calls };
}

describe("SeedQueue (KAS-H1-002)", () => {
  it("defaults to MAX_PENDING_EVENTS = 64 and appends while the total fits", () => {
    const { q, dropReports } = queue();
    expect(q.capacity).toBe(MAX_PENDING_EVENTS);
    expect(MAX_PENDING_EVENTS).toBe(64);
    q.pushAll(range(0, 64));
    expect(q.length).toBe(64);
    expect(q.dropped).toBe(0);
    expect(q.toArray()).toEqual(range(0, 64));
    expect(dropReports).toEqual([]);
  });

  it("spec §16 vector: 60 queued + 10 new ⇒ 64 entries, dropped 7, newest 63 in order", () => {
    const { q, dropReports } = queue();
    q.pushAll(range(0, 60));
    q.pushAll(range(60, 70));
    const drained = q.drain();
    expect(drained).toHaveLength(64);
    expect(drained[0]).toEqual({ kind: "marker", dropped: 7 });
    expect(drained.slice(1)).toEqual(range(7, 70));
    expect(dropReports).toEqual([7]);
  });

  it("spec §16 vector: 0 queued + 100 new ⇒ 64 entries, dropped 37", () => {
    const { q, dropReports } = queue();
    q.pushAll(range(0, 100));
    expect(q.length).toBe(64);
    expect(q.toArray()).toEqual([{ kind: "marker", dropped: 37 }, ...range(37, 100)]);
    expect(dropReports).toEqual([37]);
  });

  it("65 = one over the cap: 2 old events make room for the marker (the original kept 65)", () => {
    const { q } = queue();
    q.pushAll(range(0, 64));
    q.push(ev(64));
    expect(q.toArray()).toEqual([{ kind: "marker", dropped: 2 }, ...range(2, 65)]);
  });

  it("repeated overflow: the head marker accumulates every discarded real event", () => {
    const { q, dropReports, calls } = queue();
    q.pushAll(range(0, 70)); // 7 dropped
    q.pushAll(range(70, 75)); // 5 more
    q.push(ev(75)); // 1 more
    q.pushAll(range(76, 300)); // 224 more
    expect(q.dropped).toBe(300 - 63);
    expect(q.toArray()).toEqual([{ kind: "marker", dropped: 237 }, ...range(237, 300)]);
    // The markers themselves are never counted as dropped events.
    expect(dropReports).toEqual([7, 5, 1, 224]);
    expect(calls.makeMarker).toBe(4);
  });

  it("drain() returns everything in order and resets the count", () => {
    const { q } = queue();
    q.pushAll(range(0, 80));
    expect(q.drain()).toHaveLength(64);
    expect(q.length).toBe(0);
    expect(q.drain()).toEqual([]);
    q.pushAll(range(0, 65));
    // A fresh count: only the 2 discarded since the drain.
    expect(q.toArray()[0]).toEqual({ kind: "marker", dropped: 2 });
  });

  it("a re-queued drained batch merges its marker into the head marker (decision 1)", () => {
    const { q, dropReports } = queue();
    q.pushAll(range(0, 70));
    const unsent = q.drain(); // [marker(7), 7..69]
    q.pushAll(range(70, 72));
    q.pushAll(unsent); // put back after a failed flush: 2 + 63 real events, marker carries 7
    expect(q.length).toBe(64);
    const [head, ...rest] = q.toArray();
    // 65 real events, 63 kept: 2 discarded now, on top of the 7 the marker carried.
    expect(head).toEqual({ kind: "marker", dropped: 9 });
    expect(rest).toEqual([...range(70, 72), ...range(7, 70)].slice(2));
    expect(dropReports).toEqual([7, 2]);
  });

  it("a re-queued marker alone takes its slot from the real events", () => {
    const { q } = queue();
    q.pushAll(range(0, 64));
    q.push({ kind: "marker", dropped: 5 });
    expect(q.toArray()).toEqual([{ kind: "marker", dropped: 6 }, ...range(1, 64)]);
  });

  it("rejects a capacity that leaves no room beside the marker", () => {
    for (const capacity of [0, 1, 2.5, Number.NaN]) {
      expect(() => queue({ capacity })).toThrow(RangeError);
    }
    const { q } = queue({ capacity: 2 });
    q.pushAll(range(0, 5));
    expect(q.toArray()).toEqual([{ kind: "marker", dropped: 4 }, ev(4)]);
  });

  describe("property: random push sequences", () => {
    // Each action is a batch of new events, or a drain.
    const action = fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0, max: 150 }).map((n) => ({ push: n })) },
      { weight: 1, arbitrary: fc.constant({ push: -1 }) },
    );

    it("bounds the length, keeps the newest events in order and counts every discarded one", () => {
      fc.assert(
        fc.property(fc.integer({ min: 2, max: 70 }), fc.array(action, { maxLength: 40 }), (capacity, actions) => {
          const { q, dropReports } = queue({ capacity });
          let nextId = 0;
          let sinceDrain: number[] = []; // ids pushed since the last drain
          let drainedReal = 0;
          const check = (entries: Ev[], droppedNow: number): void => {
            expect(entries.length).toBeLessThanOrEqual(capacity);
            if (sinceDrain.length <= capacity) {
              expect(entries).toEqual(sinceDrain.map(ev));
              expect(droppedNow).toBe(0);
            } else {
              const kept = capacity - 1;
              expect(entries).toHaveLength(capacity);
              // Exactly the real events discarded since the last drain, in one head marker.
              expect(entries[0]).toEqual({ kind: "marker", dropped: sinceDrain.length - kept });
              expect(entries.slice(1)).toEqual(sinceDrain.slice(-kept).map(ev));
              expect(droppedNow).toBe(sinceDrain.length - kept);
            }
          };
          for (const { push } of actions) {
            if (push < 0) {
              const droppedNow = q.dropped;
              const drained = q.drain();
              check(drained, droppedNow);
              drainedReal += drained.filter((e) => e.kind === "event").length;
              expect(q.length).toBe(0);
              sinceDrain = [];
              continue;
            }
            q.pushAll(range(nextId, nextId + push));
            for (let id = nextId; id < nextId + push; id += 1) sinceDrain.push(id);
            nextId += push;
            check(q.toArray(), q.dropped);
          }
          // Conservation: every pushed event was drained, is still queued, or was reported dropped.
          const stillQueued = q.toArray().filter((e) => e.kind === "event").length;
          const reported = dropReports.reduce((a, b) => a + b, 0);
          expect(drainedReal + stillQueued + reported).toBe(nextId);
        }),
        { numRuns: 300 },
      );
    });
  });

  describe("complexity shape (no timing)", () => {
    afterEach(() => vi.restoreAllMocks());

    it("never moves elements with shift/unshift/splice while pushing", () => {
      const { q } = queue();
      const shift = vi.spyOn(Array.prototype, "shift");
      const unshift = vi.spyOn(Array.prototype, "unshift");
      const splice = vi.spyOn(Array.prototype, "splice");
      q.pushAll(range(0, 64));
      for (let i = 0; i < 1000; i += 1) q.push(ev(64 + i));
      q.pushAll(range(2000, 12_000));
      const counts = [shift.mock.calls.length, unshift.mock.calls.length, splice.mock.calls.length];
      vi.restoreAllMocks();
      expect(counts).toEqual([0, 0, 0]);
      expect(q.dropped).toBe(11_064 - 63);
    });

    it("looks at each pushed event once, however full the queue is", () => {
      const { q, calls } = queue();
      q.pushAll(range(0, 64));
      calls.markerCount = 0;
      calls.makeMarker = 0;
      for (let i = 0; i < 5000; i += 1) q.push(ev(100 + i));
      q.pushAll(range(10_000, 60_000));
      // One inspection per event and one marker per overflowing push: work is linear in the
      // events pushed, independent of the queue's contents.
      expect(calls.markerCount).toBe(5000 + 50_000);
      expect(calls.makeMarker).toBe(5001);
    });
  });
});
