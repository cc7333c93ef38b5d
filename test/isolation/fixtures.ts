// Loading and replay helpers for the isolation golden fixtures (read-only; see test/support/fixtures.ts).

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { fixturesDir } from "../support/fixtures.js";
import type { IsolationSession, ObserverSide, ProjectionSampler } from "../../src/isolation/index.js";

export const ISOLATION_FIXTURES = join(fixturesDir(), "isolation");

export interface HookCall {
  readonly role: ObserverSide;
  readonly param: string;
}

export type FixtureEvent =
  | { readonly op: "backward"; readonly hook_calls: readonly HookCall[]; readonly grads: Readonly<Record<string, number[]>> }
  | { readonly op: "reset" | "close" | "open" | "enable_collection" | "disable_collection" };

export interface ExpectedSnapshot {
  readonly host_norm: number;
  readonly seed_norm: number;
  readonly dot_product: number;
  readonly verify: boolean;
  readonly host_norm_sq: number;
  readonly seed_norm_sq: number;
  readonly active: boolean;
}

export interface Variant {
  readonly id: string;
  readonly implementation: "projection" | "full";
  readonly projection_samples: number | null;
  readonly threshold: number;
  readonly projection: Readonly<Record<string, { indices: number[]; scale: number }>> | null;
  readonly expected: readonly ExpectedSnapshot[];
}

export interface IsolationFixture {
  readonly scenario: string;
  readonly params: readonly { key: string; role: string; numel: number }[];
  readonly events: readonly FixtureEvent[];
  readonly variants: readonly Variant[];
  readonly numerics: { suggested_rel_tolerance: number; suggested_abs_tolerance: number };
}

export function loadIsolationFixtures(): IsolationFixture[] {
  const files = readdirSync(ISOLATION_FIXTURES).filter((f) => f.endsWith(".json")).sort();
  return files.map((f) => JSON.parse(readFileSync(join(ISOLATION_FIXTURES, f), "utf8")) as IsolationFixture);
}

/** projection_samples for the session: `full` is the whole-gradient implementation, i.e. exact mode. */
export function samplesOf(variant: Variant): number {
  return variant.implementation === "full" ? 0 : (variant.projection_samples ?? 0);
}

/** Hands out the recorded indices (torch.randperm cannot be reproduced) and records each request. */
export class RecordedSampler implements ProjectionSampler {
  readonly calls: string[] = [];

  constructor(private readonly variant: Variant) {}

  sample(paramKey: string, numel: number, samples: number): ArrayLike<number> {
    this.calls.push(paramKey);
    const recorded = this.variant.projection?.[paramKey];
    if (recorded === undefined) throw new Error(`no recorded projection for ${paramKey}`);
    expect(recorded.indices.length).toBe(Math.min(samples, numel));
    expect(recorded.scale).toBe(numel / recorded.indices.length);
    return recorded.indices;
  }
}

/** Keys the recording projected (non-empty indices): the sampler must be asked for exactly these, once. */
export function projectedKeys(variant: Variant): string[] {
  return Object.entries(variant.projection ?? {})
    .filter(([, p]) => p.indices.length > 0)
    .map(([k]) => k)
    .sort();
}

export function expectClose(actual: number, expected: number, label: string): void {
  const tolerance = 1e-9 + 1e-5 * Math.abs(expected);
  if (!(Math.abs(actual - expected) <= tolerance)) {
    expect.fail(`${label}: ${actual} is not within ${tolerance} of ${expected}`);
  }
}

export function expectSnapshot(session: IsolationSession, expected: ExpectedSnapshot, label: string): void {
  const s = session.snapshot();
  expectClose(s.hostNorm, expected.host_norm, `${label} host_norm`);
  expectClose(s.seedNorm, expected.seed_norm, `${label} seed_norm`);
  expectClose(s.dotProduct, expected.dot_product, `${label} dot_product`);
  expectClose(s.hostNormSq, expected.host_norm_sq, `${label} host_norm_sq`);
  expectClose(s.seedNormSq, expected.seed_norm_sq, `${label} seed_norm_sq`);
  expect(session.verify(), `${label} verify`).toBe(expected.verify);
  expect(s.isolated, `${label} isolated`).toBe(expected.verify);
  expect(s.active, `${label} active`).toBe(expected.active);
}

/** Applies a non-backward event to the session. */
export function applyControl(session: IsolationSession, event: FixtureEvent): void {
  switch (event.op) {
    case "reset":
      return session.reset();
    case "close":
      return session.close();
    case "open":
      return session.open();
    case "enable_collection":
      return session.enableCollection();
    case "disable_collection":
      return session.disableCollection();
    case "backward":
      throw new Error("backward is not a control event");
  }
}
