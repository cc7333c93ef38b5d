import { describe, expect, it } from "vitest";
import {
  BreakerState,
  CircuitBreaker,
  breakerStateName,
  isBreakerState,
  type BreakerStateValue,
} from "../../src/kasmina/circuit-breaker.js";
import { FakeClock } from "../../src/kasmina/ports.js";

function breaker(options: { failureThreshold?: number; timeoutMs?: number; successThreshold?: number } = {}) {
  const clock = new FakeClock(1000);
  return { clock, cb: new CircuitBreaker({ clock, ...options }) };
}

/** Drives a fresh breaker into OPEN through failures. */
function opened(threshold = 3, timeoutMs = 60_000) {
  const made = breaker({ failureThreshold: threshold, timeoutMs });
  for (let i = 0; i < threshold; i += 1) made.cb.recordFailure("fetch_error");
  expect(made.cb.snapshot().state).toBe(BreakerState.OPEN);
  return made;
}

/** Drives a fresh breaker into HALF_OPEN through a cool-down. */
function halfOpen(threshold = 3, timeoutMs = 60_000) {
  const made = opened(threshold, timeoutMs);
  made.clock.advance(timeoutMs / 1000);
  expect(made.cb.allow().event?.action).toBe("transition");
  expect(made.cb.snapshot().state).toBe(BreakerState.HALF_OPEN);
  return made;
}

describe("CircuitBreaker", () => {
  it("Appendix B vector: threshold 2, timeout 100 ms", () => {
    const { clock, cb } = breaker({ failureThreshold: 2, timeoutMs: 100 });
    expect(cb.recordFailure("fetch_error")).toEqual({ state: BreakerState.CLOSED, reason: "fetch_error", action: "count" });
    expect(cb.snapshot().failureCount).toBe(1);
    expect(cb.recordFailure("fetch_error")).toEqual({ state: BreakerState.OPEN, reason: "fetch_error", action: "transition" });
    expect(cb.allow()).toEqual({
      allowed: false,
      event: { state: BreakerState.OPEN, reason: "breaker_open", action: "denied" },
    });
    clock.advance(0.2);
    expect(cb.allow()).toEqual({
      allowed: true,
      event: { state: BreakerState.HALF_OPEN, reason: "cooldown_elapsed", action: "transition" },
    });
    expect(cb.recordSuccess()).toEqual({ state: BreakerState.HALF_OPEN, reason: "success", action: "count" });
    expect(cb.recordSuccess()).toEqual({ state: BreakerState.CLOSED, reason: "stabilised", action: "transition" });
    expect(cb.snapshot()).toEqual({ state: BreakerState.CLOSED, failureCount: 0, successCount: 0, openUntil: null });
  });

  it("defaults to 3 / 60,000 ms / 2 and clamps out-of-range parameters", () => {
    const defaults = breaker().cb;
    expect([defaults.failureThreshold, defaults.timeoutMs, defaults.successThreshold]).toEqual([3, 60_000, 2]);
    const clamped = breaker({ failureThreshold: 0, timeoutMs: -5, successThreshold: -1 }).cb;
    expect([clamped.failureThreshold, clamped.timeoutMs, clamped.successThreshold]).toEqual([1, 0, 1]);
    const nan = breaker({ failureThreshold: Number.NaN, timeoutMs: Number.NaN, successThreshold: Number.NaN }).cb;
    expect([nan.failureThreshold, nan.timeoutMs, nan.successThreshold]).toEqual([3, 60_000, 2]);
    // Threshold clamped to 1: a single failure opens; timeout 0: the next allow() half-opens.
    expect(clamped.recordFailure("x").action).toBe("transition");
    expect(clamped.allow()).toMatchObject({ allowed: true, event: { action: "transition" } });
  });

  describe("allow()", () => {
    it("OPEN before the deadline denies without changing state", () => {
      const { clock, cb } = opened();
      clock.advance(59.999);
      expect(cb.allow()).toEqual({
        allowed: false,
        event: { state: BreakerState.OPEN, reason: "breaker_open", action: "denied" },
      });
      expect(cb.snapshot()).toEqual({ state: BreakerState.OPEN, failureCount: 3, successCount: 0, openUntil: 1060 });
    });

    it("OPEN at the deadline moves to HALF_OPEN, zeroes counters and clears the deadline", () => {
      const { clock, cb } = opened();
      clock.advance(60);
      expect(cb.allow()).toEqual({
        allowed: true,
        event: { state: BreakerState.HALF_OPEN, reason: "cooldown_elapsed", action: "transition" },
      });
      expect(cb.snapshot()).toEqual({ state: BreakerState.HALF_OPEN, failureCount: 0, successCount: 0, openUntil: null });
    });

    it("CLOSED and HALF_OPEN allow without an event (HALF_OPEN does not limit trial calls)", () => {
      expect(breaker().cb.allow()).toEqual({ allowed: true });
      const { cb } = halfOpen();
      for (let i = 0; i < 5; i += 1) expect(cb.allow()).toEqual({ allowed: true });
    });
  });

  describe("recordFailure()", () => {
    it("counts below the threshold in CLOSED and resets the success count", () => {
      const { cb } = breaker();
      cb.recordSuccess();
      expect(cb.recordFailure("latency_budget_exceeded")).toEqual({
        state: BreakerState.CLOSED,
        reason: "latency_budget_exceeded",
        action: "count",
      });
      expect(cb.snapshot()).toMatchObject({ failureCount: 1, successCount: 0, openUntil: null });
    });

    it("opens at the threshold with deadline now + timeout", () => {
      const { cb } = breaker({ failureThreshold: 3, timeoutMs: 30_000 });
      cb.recordFailure("a");
      cb.recordFailure("b");
      expect(cb.recordFailure("c")).toEqual({ state: BreakerState.OPEN, reason: "c", action: "transition" });
      expect(cb.snapshot()).toEqual({ state: BreakerState.OPEN, failureCount: 3, successCount: 0, openUntil: 1030 });
    });

    it("in OPEN extends the deadline from now", () => {
      const { clock, cb } = opened();
      clock.advance(10);
      expect(cb.recordFailure("again")).toEqual({ state: BreakerState.OPEN, reason: "again", action: "extend" });
      expect(cb.snapshot()).toMatchObject({ failureCount: 4, openUntil: 1070 });
      clock.advance(55); // past the original deadline (1060), before the extended one
      expect(cb.allow().allowed).toBe(false);
    });

    it("decision 21: the first failure in HALF_OPEN re-opens (the original needed 3)", () => {
      const { clock, cb } = halfOpen(3, 60_000);
      expect(cb.recordFailure("fetch_error")).toEqual({
        state: BreakerState.OPEN,
        reason: "fetch_error",
        action: "transition",
      });
      expect(cb.snapshot()).toEqual({
        state: BreakerState.OPEN,
        failureCount: 1,
        successCount: 0,
        openUntil: clock.monotonic() + 60,
      });
      expect(cb.allow().allowed).toBe(false);
    });

    it("decision 21 also applies after a partial recovery in HALF_OPEN", () => {
      const { cb } = halfOpen();
      expect(cb.recordSuccess()?.action).toBe("count");
      expect(cb.recordFailure("x")).toMatchObject({ state: BreakerState.OPEN, action: "transition" });
      expect(cb.snapshot().successCount).toBe(0);
    });
  });

  describe("recordSuccess()", () => {
    it("is ignored in OPEN", () => {
      const { cb } = opened();
      const before = cb.snapshot();
      expect(cb.recordSuccess()).toBeUndefined();
      expect(cb.snapshot()).toEqual(before);
    });

    it("in CLOSED zeroes the failure count", () => {
      const { cb } = breaker();
      cb.recordFailure("a");
      cb.recordFailure("b");
      expect(cb.recordSuccess()).toEqual({ state: BreakerState.CLOSED, reason: "success", action: "count" });
      expect(cb.snapshot().failureCount).toBe(0);
      // Two more failures no longer reach the threshold of 3.
      cb.recordFailure("c");
      expect(cb.recordFailure("d").state).toBe(BreakerState.CLOSED);
    });

    it("in HALF_OPEN counts up to the success threshold, then closes", () => {
      const { clock, cb } = opened(3, 60_000);
      clock.advance(60);
      cb.allow();
      expect(cb.recordSuccess()).toEqual({ state: BreakerState.HALF_OPEN, reason: "success", action: "count" });
      expect(cb.snapshot().successCount).toBe(1);
      expect(cb.recordSuccess()).toEqual({ state: BreakerState.CLOSED, reason: "stabilised", action: "transition" });
      expect(cb.snapshot()).toEqual({ state: BreakerState.CLOSED, failureCount: 0, successCount: 0, openUntil: null });
    });

    it("honours a larger success threshold", () => {
      const clock = new FakeClock();
      const cb = new CircuitBreaker({ clock, failureThreshold: 1, successThreshold: 3, timeoutMs: 0 });
      cb.recordFailure("x");
      cb.allow();
      expect(cb.recordSuccess()?.state).toBe(BreakerState.HALF_OPEN);
      expect(cb.recordSuccess()?.state).toBe(BreakerState.HALF_OPEN);
      expect(cb.recordSuccess()?.state).toBe(BreakerState.CLOSED);
    });
  });

  describe("forceState()", () => {
    it("CLOSED zeroes counters and clears the deadline", () => {
      const { cb } = opened();
      expect(cb.forceState(BreakerState.CLOSED, "operator")).toEqual({
        state: BreakerState.CLOSED,
        reason: "operator",
        action: "forced",
      });
      expect(cb.snapshot()).toEqual({ state: BreakerState.CLOSED, failureCount: 0, successCount: 0, openUntil: null });
    });

    it("OPEN sets failure count to the threshold and deadline to now + timeout", () => {
      const { clock, cb } = breaker({ failureThreshold: 4, timeoutMs: 5000 });
      cb.recordSuccess();
      expect(cb.forceState(BreakerState.OPEN)).toEqual({ state: BreakerState.OPEN, reason: "manual", action: "forced" });
      expect(cb.snapshot()).toEqual({
        state: BreakerState.OPEN,
        failureCount: 4,
        successCount: 0,
        openUntil: clock.monotonic() + 5,
      });
      expect(cb.allow().allowed).toBe(false);
    });

    it("HALF_OPEN zeroes counters and clears the deadline", () => {
      const { cb } = opened();
      expect(cb.forceState(BreakerState.HALF_OPEN, "probe")).toEqual({
        state: BreakerState.HALF_OPEN,
        reason: "probe",
        action: "forced",
      });
      expect(cb.snapshot()).toEqual({ state: BreakerState.HALF_OPEN, failureCount: 0, successCount: 0, openUntil: null });
    });

    it.each([0, 4, -1, 2.5])("rejects state %s with the spec's message and changes nothing", (state) => {
      const { cb } = opened();
      const before = cb.snapshot();
      expect(() => cb.forceState(state)).toThrow(new Error(`Unsupported circuit breaker state: ${state}`));
      expect(cb.snapshot()).toEqual(before);
    });
  });

  it("names states as Leyline enum value names", () => {
    const names = ([1, 2, 3] as BreakerStateValue[]).map(breakerStateName);
    expect(names).toEqual(["CIRCUIT_STATE_CLOSED", "CIRCUIT_STATE_OPEN", "CIRCUIT_STATE_HALF_OPEN"]);
    expect([0, 1, 2, 3, 4].map(isBreakerState)).toEqual([false, true, true, true, false]);
  });
});
