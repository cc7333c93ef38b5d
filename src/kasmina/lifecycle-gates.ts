// Gates (spec §4.3) and what a failed one does (spec §8.5), isolation sessions and violations.
import { SeedLifecycleGate as Gate, seedLifecycleGateToJSON, SeedLifecycleStage as Stage, type TelemetryEvent, TelemetryLevel } from "../leyline.js";
import { BreakerState } from "./circuit-breaker.js";
import { evaluateGate, type GateInputs, type GateResult } from "./gates.js";
import { isCollectingStage, stageName } from "./lifecycle.js";
import type { SeedContext } from "./seed-context.js";
import { type Attributes, event, info, warning } from "./telemetry.js";
import { bool, fmt } from "./run-types.js";
import { TelemetryFlush } from "./telemetry-flush.js";

export abstract class LifecycleGates extends TelemetryFlush {
  // ---------------------------------------------------------------- gates

  protected gateInputs(ctx: SeedContext, extra: Pick<GateInputs, "blueprintId" | "parameters"> = {}): GateInputs {
    return {
      ...extra,
      isolationViolations: ctx.isolationViolations,
      kernelAttached: ctx.kernelAttached,
      lastLatencyMs: ctx.lastKernelLatencyMs,
      latencyBudgetMs: this.latencyBudgetMs,
      fallbackUsed: ctx.usedFallback,
      hostParamsRegistered: this.state.hostParameters.size > 0,
      interfaceChecksOk: ctx.metadata.get("interface_checks") === "ok",
      performanceStatus: ctx.metadata.get("performance_status") ?? "nominal",
      resetClean: !ctx.kernelAttached && ctx.isolationViolations === 0,
    };
  }

  /** Spec §4.3. Returns whether the gate passed; on failure the seed has been handled. */
  protected ensureGate(ctx: SeedContext, gate: Gate, events: TelemetryEvent[], extra: Pick<GateInputs, "blueprintId" | "parameters"> = {}): boolean {
    const result = evaluateGate(gate, this.gateInputs(ctx, extra));
    ctx.lastGateResults.set(gate, result);
    events.push(this.gateEvent(ctx.seedId, result));
    if (result.passed) {
      if (gate === Gate.SEED_GATE_G1_GRADIENT_HEALTH) events.push(...this.isolationBreakerSuccess(ctx.seedId));
      return true;
    }
    events.push(...this.gateFailure(ctx, result));
    return false;
  }

  protected gateEvent(seedId: string, result: GateResult): TelemetryEvent {
    const attributes: Attributes = { seed_id: seedId, gate: seedLifecycleGateToJSON(result.gate), passed: bool(result.passed), ...result.attributes };
    if (result.reason !== "") attributes["reason"] = result.reason;
    return result.passed ? info("gate_event", attributes) : warning("gate_event", attributes);
  }

  protected isolationBreakerSuccess(seedId: string): TelemetryEvent[] {
    const result = this.isolationBreaker.recordSuccess();
    return result === undefined ? [] : [this.isolationBreakerEvent(result, seedId)];
  }

  /** Spec §8.5. */
  protected gateFailure(ctx: SeedContext, result: GateResult): TelemetryEvent[] {
    const reason = result.reason === "" ? "unknown" : result.reason;
    this.closeSession(ctx.seedId);
    this.registry.deregisterSeed(ctx.seedId);
    this.memory.kernelCache.delete(ctx.seedId);
    ctx.metadata.set("performance_status", "violations");
    ctx.metadata.set("last_gate_failure", reason);
    ctx.kernelAttached = false;
    ctx.usedFallback = false;
    ctx.isolationViolations = Math.max(ctx.isolationViolations, 1);
    ctx.embargoUntil = this.embargoSeconds > 0 ? this.clock.monotonic() + this.embargoSeconds : null;
    ctx.kernel = undefined;
    this.transition(ctx, Stage.SEED_STAGE_CULLED);
    if (this.embargoSeconds > 0) this.transition(ctx, Stage.SEED_STAGE_EMBARGOED);
    const events = [warning("gate_failure", { seed_id: ctx.seedId, gate: seedLifecycleGateToJSON(result.gate), reason })];
    const latency = this.recordRollback(ctx, result.reason === "" ? "gate_failure" : result.reason);
    events.push(warning("rollback_ready", { seed_id: ctx.seedId, stage: stageName(ctx.stage), latency_ms: fmt(latency, 3) }));
    return events;
  }

  protected openSession(ctx: SeedContext, seedParameters: readonly string[]): void {
    this.closeSession(ctx.seedId);
    if (this.isolation === undefined || this.state.hostParameters.size === 0) return;
    try {
      const session = this.isolation.openSession(ctx.seedId, [...this.state.hostParameters], seedParameters);
      if (!isCollectingStage(ctx.stage)) session.disableCollection();
      this.state.sessions.set(ctx.seedId, session);
    } catch (error) {
      this.log(`isolation session for ${ctx.seedId} could not be opened: ${(error as Error).message}`);
    }
  }

  protected closeSession(seedId: string): void {
    this.state.sessions.get(seedId)?.close();
    this.state.sessions.delete(seedId);
  }



  protected recordViolation(seedId: string): TelemetryEvent[] {
    this.state.globalViolations += 1;
    this.violationsCounter.add(1);
    if (seedId !== "") {
      let ctx = this.state.seeds.get(seedId);
      if (ctx === undefined) ctx = this.createEphemeral(seedId);
      ctx.isolationViolations += 1;
      ctx.metadata.set("performance_status", "violations");
    }
    const breaker = this.isolationBreaker.recordFailure("isolation_violation");
    const open = this.isolationBreaker.snapshot().state === BreakerState.OPEN;
    const attributes: Attributes = { violations: String(this.state.globalViolations) };
    if (seedId !== "") attributes["seed_id"] = seedId;
    return [
      event("violation_recorded", open ? TelemetryLevel.TELEMETRY_LEVEL_CRITICAL : TelemetryLevel.TELEMETRY_LEVEL_WARNING, attributes),
      this.isolationBreakerEvent(breaker, seedId === "" ? undefined : seedId),
    ];
  }

}

export function syntheticG1(reason: string, attributes: Attributes): GateResult {
  return { gate: Gate.SEED_GATE_G1_GRADIENT_HEALTH, passed: false, reason, attributes };
}
