// Alpha schedule (spec §12.1, KAS-H1-004): the blending weight of a seed after `step` steps.
// The original built a float32 tensor per call; this is the same logistic curve in plain
// double-precision math, 0.5·(1 + tanh(x/2)) = 1/(1 + e^(−x)), with no allocation per call.
// As in the original there is no clamping outside [0, totalSteps]: the curve just continues.

export const DEFAULT_ALPHA_TOTAL_STEPS = 20;
export const DEFAULT_ALPHA_TEMPERATURE = 2.0;
/** Lower bound of the temperature; zero or negative temperatures give a hard 0 / 0.5 / 1 step. */
export const MIN_ALPHA_TEMPERATURE = 1e-6;

export interface AlphaScheduleOptions {
  readonly totalSteps?: number;
  readonly temperature?: number;
}

export class AlphaSchedule {
  readonly totalSteps: number;
  readonly temperature: number;
  private readonly midpoint: number;
  // x/2 = (step − midpoint) / (2·temperature): one multiply per call.
  private readonly halfInverseTemperature: number;

  constructor(options: AlphaScheduleOptions = {}) {
    const totalSteps = options.totalSteps ?? DEFAULT_ALPHA_TOTAL_STEPS;
    const temperature = options.temperature ?? DEFAULT_ALPHA_TEMPERATURE;
    if (Number.isNaN(totalSteps) || Number.isNaN(temperature)) {
      throw new RangeError("AlphaSchedule totalSteps and temperature must be numbers");
    }
    this.totalSteps = totalSteps;
    this.temperature = Math.max(temperature, MIN_ALPHA_TEMPERATURE);
    this.midpoint = totalSteps / 2;
    this.halfInverseTemperature = 0.5 / this.temperature;
  }

  /** Alpha in [0, 1]; 1.0 for every step when totalSteps ≤ 0 (blending disabled). */
  value(step: number): number {
    if (this.totalSteps <= 0) {
      return 1.0;
    }
    return 0.5 * (1 + Math.tanh((step - this.midpoint) * this.halfInverseTemperature));
  }
}
