import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fixturesDir } from "../support/fixtures.js";
import { describe, expect, it } from "vitest";
import { AlphaSchedule } from "../../src/kasmina/alpha-schedule.js";

interface AlphaConfig {
  readonly name: string;
  readonly total_steps: number;
  readonly temperature: number | null;
  readonly effective_temperature: number;
  readonly values: ReadonlyArray<{ readonly step: number; readonly value: number }>;
}

const fixture = JSON.parse(
  readFileSync(join(fixturesDir(), "alpha", "alpha_schedule.json"), "utf8"),
) as { readonly configs: readonly AlphaConfig[] };

describe("AlphaSchedule (KAS-H1-004)", () => {
  it("covers every recorded config", () => {
    expect(fixture.configs.length).toBeGreaterThanOrEqual(12);
  });

  // Results the original flushed to 0 (below float32's smallest normal) are ~1e-38 here: within 1e-6.
  it.each(fixture.configs.map((c) => [c.name, c] as const))("%s matches the float32 reference within 1e-6", (_, config) => {
    // A null temperature means the Python class default (1.0), recorded as effective_temperature.
    const schedule = new AlphaSchedule({ totalSteps: config.total_steps, temperature: config.effective_temperature });
    for (const { step, value } of config.values) {
      expect(Math.abs(schedule.value(step) - value), `step ${step}`).toBeLessThanOrEqual(1e-6);
    }
  });

  it("defaults to the seed manager's 20 steps at temperature 2.0 (spec §12.1 table)", () => {
    const schedule = new AlphaSchedule();
    expect([schedule.totalSteps, schedule.temperature]).toEqual([20, 2.0]);
    const reference: Array<[number, number]> = [
      [0, 0.006693],
      [1, 0.010987],
      [2, 0.017986],
      [5, 0.075858],
      [10, 0.5],
      [15, 0.924142],
      [19, 0.989013],
      [20, 0.993307],
      [25, 0.999447],
    ];
    for (const [step, value] of reference) expect(schedule.value(step)).toBeCloseTo(value, 6);
    expect(schedule.value(10)).toBe(0.5);
  });

  it("clamps the temperature to 1e-6, giving a hard step", () => {
    const schedule = new AlphaSchedule({ totalSteps: 20, temperature: -3 });
    expect(schedule.temperature).toBe(1e-6);
    expect([schedule.value(9), schedule.value(10), schedule.value(11)]).toEqual([0, 0.5, 1]);
  });

  it("is 1.0 everywhere when totalSteps ≤ 0", () => {
    for (const totalSteps of [0, -4]) {
      const schedule = new AlphaSchedule({ totalSteps });
      expect([-5, 0, 3, 1e6].map((s) => schedule.value(s))).toEqual([1, 1, 1, 1]);
    }
  });

  it("rejects NaN parameters", () => {
    expect(() => new AlphaSchedule({ temperature: Number.NaN })).toThrow(RangeError);
    expect(() => new AlphaSchedule({ totalSteps: Number.NaN })).toThrow(RangeError);
  });
});
