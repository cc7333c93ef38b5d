// Lifecycle gates G0–G5 (spec §4.2): pure functions of the inputs the manager assembles.
import { SeedLifecycleGate as Gate } from "../leyline.js";

export interface GateInputs {
  blueprintId?: string;
  parameters?: ReadonlyMap<string, number>;
  isolationViolations: number;
  kernelAttached: boolean;
  lastLatencyMs: number;
  latencyBudgetMs: number;
  fallbackUsed: boolean;
  hostParamsRegistered: boolean;
  interfaceChecksOk: boolean;
  performanceStatus: string;
  resetClean: boolean;
}

export interface GateResult {
  gate: Gate;
  passed: boolean;
  reason: string;
  attributes: Record<string, string>;
}

const pass = (gate: Gate, attributes: Record<string, string>): GateResult => ({ gate, passed: true, reason: "", attributes });
const fail = (gate: Gate, reason: string, attributes: Record<string, string>): GateResult => ({
  gate,
  passed: false,
  reason,
  attributes,
});

const HEALTHY_STATUSES = new Set(["nominal", "healthy", "fallback"]);

export function evaluateGate(gate: Gate, input: GateInputs): GateResult {
  switch (gate) {
    case Gate.SEED_GATE_G0_SANITY: {
      const blueprint = (input.blueprintId ?? "").trim();
      if (blueprint === "") return fail(gate, "missing blueprint id", { blueprint_id: "" });
      for (const [key, value] of input.parameters ?? []) {
        if (value === undefined || value === null || Number.isNaN(value)) {
          return fail(gate, `parameter ${key} invalid`, { parameter: key });
        }
      }
      return pass(gate, { blueprint_id: blueprint });
    }
    case Gate.SEED_GATE_G1_GRADIENT_HEALTH:
      if (!input.kernelAttached) return fail(gate, "kernel not attached", { kernel_attached: "false" });
      if (input.isolationViolations > 0) {
        return fail(gate, "gradient isolation violations present", { violations: String(input.isolationViolations) });
      }
      return pass(gate, { kernel_attached: "true" });
    case Gate.SEED_GATE_G2_STABILITY:
      // Strictly greater: a latency equal to the budget passes; 0 means "not measured".
      if (input.lastLatencyMs !== 0 && input.lastLatencyMs > input.latencyBudgetMs) {
        return fail(gate, "latency budget exceeded", {
          latency_ms: input.lastLatencyMs.toFixed(2),
          budget_ms: input.latencyBudgetMs.toFixed(2),
        });
      }
      return pass(gate, { fallback_used: String(input.fallbackUsed) });
    case Gate.SEED_GATE_G3_INTERFACE:
      if (!input.hostParamsRegistered) return fail(gate, "host model not registered", { host_params_registered: "false" });
      if (!input.interfaceChecksOk) return fail(gate, "interface checks incomplete", { interface: "failed" });
      return pass(gate, { interface: "ok" });
    case Gate.SEED_GATE_G4_SYSTEM_IMPACT:
      if (!HEALTHY_STATUSES.has(input.performanceStatus)) {
        return fail(gate, `performance status ${input.performanceStatus}`, { status: input.performanceStatus });
      }
      if (input.isolationViolations > 0) return fail(gate, "violations recorded", { violations: String(input.isolationViolations) });
      return pass(gate, { status: input.performanceStatus });
    case Gate.SEED_GATE_G5_RESET:
      return input.resetClean ? pass(gate, {}) : fail(gate, "reset state not clean", {});
    default:
      return fail(Gate.SEED_GATE_UNKNOWN, "unsupported gate", { gate: "unknown" });
  }
}
