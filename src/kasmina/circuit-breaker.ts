// Circuit breaker (spec §7), used for the kernel breaker and the isolation breaker.
// Deviation from the original, by DESIGN §3 decision 21: HALF_OPEN re-opens on the first
// failure (the classic pattern) instead of needing `failureThreshold` further failures.

import type { Clock } from "./ports.js";

/** Numeric values of Leyline `CircuitBreakerState` (spec §1.1); UNKNOWN (0) is never a breaker state. */
export const BreakerState = {
  CLOSED: 1,
  OPEN: 2,
  HALF_OPEN: 3,
} as const;

export type BreakerStateValue = (typeof BreakerState)[keyof typeof BreakerState];

const STATE_NAMES: Readonly<Record<BreakerStateValue, string>> = {
  [BreakerState.CLOSED]: "CIRCUIT_STATE_CLOSED",
  [BreakerState.OPEN]: "CIRCUIT_STATE_OPEN",
  [BreakerState.HALF_OPEN]: "CIRCUIT_STATE_HALF_OPEN",
};

/** Leyline enum value name, as telemetry attributes render it (spec §0.2). */
export function breakerStateName(state: BreakerStateValue): string {
  return STATE_NAMES[state];
}

export function isBreakerState(value: number): value is BreakerStateValue {
  return value === BreakerState.CLOSED || value === BreakerState.OPEN || value === BreakerState.HALF_OPEN;
}

export type BreakerAction = "denied" | "transition" | "extend" | "count" | "forced";

export interface BreakerEvent {
  readonly state: BreakerStateValue;
  readonly reason: string;
  readonly action: BreakerAction;
}

export interface BreakerDecision {
  readonly allowed: boolean;
  readonly event?: BreakerEvent;
}

export interface BreakerSnapshot {
  readonly state: BreakerStateValue;
  readonly failureCount: number;
  readonly successCount: number;
  /** Monotonic deadline in seconds, or null when no cool-down is pending. */
  readonly openUntil: number | null;
}

export interface CircuitBreakerOptions {
  readonly clock: Clock;
  readonly failureThreshold?: number;
  readonly timeoutMs?: number;
  readonly successThreshold?: number;
}

/** `value` clamped to ≥ `min`; a missing or NaN value takes the default (Math.max would keep NaN). */
function atLeast(min: number, value: number | undefined, fallback: number): number {
  return value === undefined || Number.isNaN(value) ? fallback : Math.max(min, value);
}

export class CircuitBreaker {
  readonly failureThreshold: number;
  readonly timeoutMs: number;
  readonly successThreshold: number;
  private readonly clock: Clock;
  private state: BreakerStateValue = BreakerState.CLOSED;
  private failureCount = 0;
  private successCount = 0;
  private openUntil: number | null = null;

  constructor(options: CircuitBreakerOptions) {
    this.clock = options.clock;
    // Clamps of spec §7.1: a breaker always needs at least one failure / success to move.
    this.failureThreshold = atLeast(1, options.failureThreshold, 3);
    this.timeoutMs = atLeast(0, options.timeoutMs, 60_000);
    this.successThreshold = atLeast(1, options.successThreshold, 2);
  }

  allow(): BreakerDecision {
    if (this.state !== BreakerState.OPEN) {
      return { allowed: true };
    }
    if (this.openUntil !== null && this.clock.monotonic() < this.openUntil) {
      return { allowed: false, event: this.event("breaker_open", "denied") };
    }
    this.state = BreakerState.HALF_OPEN;
    this.failureCount = 0;
    this.successCount = 0;
    this.openUntil = null;
    return { allowed: true, event: this.event("cooldown_elapsed", "transition") };
  }

  recordFailure(reason: string): BreakerEvent {
    this.failureCount += 1;
    this.successCount = 0;
    if (this.state === BreakerState.OPEN) {
      this.openUntil = this.deadline();
      return this.event(reason, "extend");
    }
    // Decision 21: a failed trial call in HALF_OPEN proves the dependency is still broken.
    if (this.state === BreakerState.HALF_OPEN || this.failureCount >= this.failureThreshold) {
      this.state = BreakerState.OPEN;
      this.openUntil = this.deadline();
      return this.event(reason, "transition");
    }
    return this.event(reason, "count");
  }

  recordSuccess(): BreakerEvent | undefined {
    switch (this.state) {
      case BreakerState.OPEN:
        return undefined;
      case BreakerState.CLOSED:
        this.failureCount = 0;
        return this.event("success", "count");
      case BreakerState.HALF_OPEN:
        this.successCount += 1;
        if (this.successCount >= this.successThreshold) {
          this.resetTo(BreakerState.CLOSED);
          return this.event("stabilised", "transition");
        }
        return this.event("success", "count");
    }
  }

  /** Operator override (spec §5.6). Accepts a raw number because it comes straight off the wire. */
  forceState(state: number, reason = "manual"): BreakerEvent {
    if (!isBreakerState(state)) {
      throw new Error(`Unsupported circuit breaker state: ${state}`);
    }
    if (state === BreakerState.OPEN) {
      this.state = BreakerState.OPEN;
      this.failureCount = this.failureThreshold;
      this.successCount = 0;
      this.openUntil = this.deadline();
    } else {
      this.resetTo(state);
    }
    return this.event(reason, "forced");
  }

  snapshot(): BreakerSnapshot {
    return {
      state: this.state,
      failureCount: this.failureCount,
      successCount: this.successCount,
      openUntil: this.openUntil,
    };
  }

  /** Puts back a snapshot taken before a restart (DESIGN §2.2); the caller re-bases `openUntil` on this clock. */
  restore(snapshot: BreakerSnapshot): void {
    this.state = snapshot.state;
    this.failureCount = snapshot.failureCount;
    this.successCount = snapshot.successCount;
    this.openUntil = snapshot.openUntil;
  }

  private resetTo(state: BreakerStateValue): void {
    this.state = state;
    this.failureCount = 0;
    this.successCount = 0;
    this.openUntil = null;
  }

  private deadline(): number {
    return this.clock.monotonic() + this.timeoutMs / 1000;
  }

  private event(reason: string, action: BreakerAction): BreakerEvent {
    return { state: this.state, reason, action };
  }
}
