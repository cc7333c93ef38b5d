// Lifecycle advance: driven pacing (DESIGN decision 27), retire and pause (spec §8.6, §5.4), alpha,
// registrations and epochs (spec §11, §15).
import { SeedLifecycleGate as Gate, SeedOperation, seedOperationToJSON, SeedLifecycleStage as Stage, type TelemetryEvent } from "../leyline.js";
import { invalidArgument } from "./errors.js";
import { IDENTITY_KERNEL, kernelParameterKey } from "./kernel-runtime.js";
import { stageName } from "./lifecycle.js";
import { gcEventAttributes, type GcResult } from "./memory-governor.js";
import { info, warning } from "./telemetry.js";
import { fmt, type GcReport, type ParameterSpecInput } from "./run-types.js";
import { KernelGrafting } from "./kernel-grafting.js";

/** The largest alpha_steps AdvanceAlphaResponse can carry (uint32). */
export const MAX_ALPHA_STEPS = 0xffff_ffff;

/** Driven pacing (DESIGN decision 27): the stage each seed operation needs, the stage it moves to and its gate. */
const DRIVEN_STEPS: ReadonlyMap<SeedOperation, { from: Stage; to: Stage; gate: Gate | undefined }> = new Map([
  [SeedOperation.SEED_OP_START_TRAINING, { from: Stage.SEED_STAGE_GERMINATED, to: Stage.SEED_STAGE_TRAINING, gate: Gate.SEED_GATE_G1_GRADIENT_HEALTH }],
  [SeedOperation.SEED_OP_START_GRAFTING, { from: Stage.SEED_STAGE_TRAINING, to: Stage.SEED_STAGE_BLENDING, gate: Gate.SEED_GATE_G2_STABILITY }],
  [SeedOperation.SEED_OP_STABILIZE, { from: Stage.SEED_STAGE_BLENDING, to: Stage.SEED_STAGE_SHADOWING, gate: Gate.SEED_GATE_G3_INTERFACE }],
  [SeedOperation.SEED_OP_EVALUATE, { from: Stage.SEED_STAGE_SHADOWING, to: Stage.SEED_STAGE_PROBATIONARY, gate: Gate.SEED_GATE_G4_SYSTEM_IMPACT }],
  [SeedOperation.SEED_OP_FOSSILIZE, { from: Stage.SEED_STAGE_PROBATIONARY, to: Stage.SEED_STAGE_FOSSILIZED, gate: undefined }],
]);

export abstract class LifecycleAdvance extends KernelGrafting {
  /** DESIGN decision 27: one stage per seed operation, behind its gate. */
  protected advanceStage(seedId: string, operation: SeedOperation): TelemetryEvent[] {
    const step = DRIVEN_STEPS.get(operation);
    if (this.pacing === "immediate" || step === undefined) return [];
    const events: TelemetryEvent[] = [];
    const ctx = this.state.seeds.get(seedId);
    const opName = seedOperationToJSON(operation);
    let problem: string | undefined;
    if (ctx === undefined) problem = "seed not managed";
    else if (ctx.stage !== step.from) problem = `${opName} needs stage ${stageName(step.from)}`;
    // A paused seed runs on the identity kernel: it may not advance until it is resumed.
    else if (ctx.metadata.get("paused") === "true") problem = "seed is paused";
    else if (operation === SeedOperation.SEED_OP_START_TRAINING && !ctx.kernelAttached) problem = "kernel not attached";
    if (problem !== undefined) {
      events.push(
        warning("transition_rejected", {
          seed_id: seedId,
          operation: opName,
          stage: ctx === undefined ? "SEED_STAGE_UNKNOWN" : stageName(ctx.stage),
          target_stage: stageName(step.to),
          reason: problem,
        }),
      );
      return events;
    }
    if (ctx === undefined) return events;
    if (step.gate !== undefined && !this.ensureGate(ctx, step.gate, events)) return events;
    this.transition(ctx, step.to);
    return events;
  }

  // ---------------------------------------------------------------- retire, pause, resume

  /** Spec §8.6 with DESIGN decision 5. */
  protected retire(seedId: string): TelemetryEvent[] {
    const ctx = this.state.seeds.get(seedId);
    if (ctx === undefined) return [];
    const events: TelemetryEvent[] = [];
    const blueprintId = ctx.metadata.get("blueprint_id");
    this.transition(ctx, Stage.SEED_STAGE_CULLED);
    ctx.kernelAttached = false;
    ctx.usedFallback = false;
    ctx.metadata.delete("interface_checks");
    ctx.kernel = undefined;
    this.transition(ctx, Stage.SEED_STAGE_EMBARGOED);
    this.transition(ctx, Stage.SEED_STAGE_RESETTING);
    ctx.metadata.clear();
    ctx.isolationViolations = 0;
    if (this.ensureGate(ctx, Gate.SEED_GATE_G5_RESET, events)) this.transition(ctx, Stage.SEED_STAGE_DORMANT);
    this.closeSession(seedId);
    this.registry.deregisterSeed(seedId);
    this.memory.kernelCache.delete(seedId);
    if (blueprintId !== undefined) this.gpuCache?.delete(blueprintId);
    for (const [requestId, pending] of this.state.pendingPrefetch) {
      if (pending.seedId !== seedId) continue;
      this.state.pendingPrefetch.delete(requestId);
      this.prefetch?.cancel?.(requestId);
    }
    this.recordRollback(ctx, "retired");
    events.push(info("rollback_ready", { seed_id: seedId, stage: stageName(ctx.stage) }));
    ctx.metadata.set("pending_removal", "true");
    return events;
  }

  /** Spec §5.4 (pause). */
  protected pause(seedId: string): TelemetryEvent[] {
    const ctx = this.state.seeds.get(seedId);
    if (ctx === undefined) return [];
    ctx.metadata.set("paused", "true");
    ctx.metadata.set("performance_status", "paused");
    ctx.kernel = IDENTITY_KERNEL;
    ctx.kernelAttached = false;
    const session = this.state.sessions.get(seedId);
    session?.disableCollection();
    session?.reset();
    return [warning("seed_paused", { seed_id: seedId })];
  }


  // ---------------------------------------------------------------- violations, alpha, registration

  /** Spec §13.5. */
  recordIsolationViolation(seedId: string): { totalViolations: number; breakerState: number } {
    const events = this.recordViolation(seedId);
    if (seedId !== "") this.queueSeedEvents(seedId, events, false);
    else this.queueGlobalEvents(events);
    return { totalViolations: this.state.globalViolations, breakerState: this.isolationBreaker.snapshot().state };
  }

  /** Spec §15.4; unknown seeds are the caller's NOT_FOUND. */
  advanceAlpha(seedId: string, steps: number): { alpha: number; alphaSteps: number; stage: Stage } | undefined {
    const ctx = this.state.seeds.get(seedId);
    if (ctx === undefined) return undefined;
    if (ctx.stage === Stage.SEED_STAGE_BLENDING) {
      // Saturates: alpha_steps is a uint32 on the wire, and past the schedule's end alpha is 1 anyway.
      ctx.alphaSteps = Math.min(ctx.alphaSteps + Math.max(steps, 0), MAX_ALPHA_STEPS);
      ctx.alpha = this.alphaSchedule.value(ctx.alphaSteps);
      ctx.metadata.set("alpha", fmt(ctx.alpha, 4));
    }
    return { alpha: ctx.alpha, alphaSteps: ctx.alphaSteps, stage: ctx.stage };
  }

  /** Spec §15.3 with DESIGN decision 13: sessions are closed and re-created for attached seeds. */
  registerHost(parameters: readonly ParameterSpecInput[]): number {
    this.state.hostParameters = new Set(parameters.map((p) => p.key));
    for (const seedId of [...this.state.sessions.keys()]) this.closeSession(seedId);
    for (const ctx of this.state.seeds.values()) {
      if (!ctx.kernelAttached || ctx.kernel === undefined) continue;
      const kernel = ctx.kernel;
      this.openSession(
        ctx,
        kernel.parameters.filter((p) => p.trainable).map((p) => kernelParameterKey(ctx.seedId, p)),
      );
    }
    return this.state.hostParameters.size;
  }

  /** Spec §11.5 with DESIGN decision 3 (the teacher is pinned). */
  registerTeacher(parameters: readonly ParameterSpecInput[], buffers: readonly ParameterSpecInput[]): { memoryGb: number; budgetGb: number; overBudget: boolean } {
    this.registry.registerTeacher(parameters.filter((p) => p.trainable).map((p) => p.key));
    let bytes = 0;
    for (const p of [...parameters, ...buffers]) bytes += p.shape.reduce((n, d) => n * d, 1) * p.elementBytes;
    const memoryGb = bytes / 1024 ** 3;
    this.memory.registerTeacher({ parameters: parameters.map((p) => p.key), buffers: buffers.map((b) => b.key), memoryGb });
    const overBudget = memoryGb > this.teacherBudgetGb;
    const attributes = { memory_gb: fmt(memoryGb, 2), budget_gb: fmt(this.teacherBudgetGb, 2) };
    this.queueGlobalEvents([overBudget ? warning("teacher_registered", attributes) : info("teacher_registered", attributes)]);
    return { memoryGb, budgetGb: this.teacherBudgetGb, overBudget };
  }

  /** Spec §11.3: record the epoch, sweep, run periodic GC and report what it removed. */
  updateEpoch(epoch: number): GcReport {
    // Spec §11.3: a negative epoch is an error (and changes nothing).
    if (!(epoch >= 0)) throw invalidArgument("epoch must be non-negative");
    this.state.epoch = epoch;
    this.memory.cleanup();
    const result: GcResult = this.memory.periodicGc(epoch);
    if (!result.ran) {
      return { ran: false, skippedReason: result.skippedReason, kernelCacheExpired: 0, telemetryCacheExpired: 0, gcCounter: this.memory.gcCounter, gcEpoch: this.memory.lastGcEpoch };
    }
    this.gcRunsCounter.add(1);
    this.queueGlobalEvents([info("memory_gc", gcEventAttributes(result))]);
    return {
      ran: true,
      skippedReason: "",
      kernelCacheExpired: result.kernelCacheExpired,
      telemetryCacheExpired: result.telemetryCacheExpired,
      gcCounter: result.gcCounter,
      gcEpoch: result.gcEpoch,
    };
  }
}
