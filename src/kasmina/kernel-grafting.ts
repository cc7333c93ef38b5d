// Kernel acquisition and grafting (spec §8, §14.3): germinate, fetch or prefetch, fallback,
// attachment, resume, and the prefetch replies.
import { SeedLifecycleGate as Gate, type KernelArtifactError, type KernelArtifactReady, SeedLifecycleStage as Stage, type TelemetryEvent } from "../leyline.js";
import { breakerStateName } from "./circuit-breaker.js";
import { evaluateGate } from "./gates.js";
import { IDENTITY_KERNEL, type Kernel, kernelParameterKey } from "./kernel-runtime.js";
import { canTransition, isCollectingStage } from "./lifecycle.js";
import { ParameterConflictError } from "./parameter-registry.js";
import type { SeedContext } from "./seed-context.js";
import { info, warning } from "./telemetry.js";
import { fmt } from "./run-types.js";
import { LifecycleGates, syntheticG1 } from "./lifecycle-gates.js";

export abstract class KernelGrafting extends LifecycleGates {
  // ---------------------------------------------------------------- germinate / attach

  /** Spec §8.1 with DESIGN decisions 4, 8, 9, 10, 16 and 27. */
  protected graft(seedId: string, blueprintId: string, parameters: ReadonlyMap<string, number>): TelemetryEvent[] {
    const events: TelemetryEvent[] = [];
    const ctx = this.getOrCreate(seedId);
    if (ctx.stage === Stage.SEED_STAGE_EMBARGOED && ctx.embargoUntil !== null && this.clock.monotonic() < ctx.embargoUntil) {
      events.push(
        warning("seed_embargoed", {
          seed_id: seedId,
          blueprint_id: blueprintId,
          remaining_s: fmt(ctx.embargoUntil - this.clock.monotonic(), 3),
        }),
      );
      return events;
    }
    // DESIGN decision 9: a germinate the lifecycle cannot take is refused before it touches anything.
    if (ctx.stage !== Stage.SEED_STAGE_GERMINATED && !canTransition(ctx.stage, Stage.SEED_STAGE_GERMINATED)) {
      this.transitionOrReject(ctx, Stage.SEED_STAGE_GERMINATED, events);
      return events;
    }
    ctx.metadata.set("blueprint_id", blueprintId);
    if (!this.ensureGate(ctx, Gate.SEED_GATE_G0_SANITY, events, { blueprintId, parameters })) return events;

    if (!this.transitionOrReject(ctx, Stage.SEED_STAGE_GERMINATED, events)) return events;

    // DESIGN decision 8 via §2.1: every call has a run, and the request carries its id.
    if (this.prefetch !== undefined) {
      let requestId: string;
      try {
        requestId = this.prefetch.requestKernel(seedId, blueprintId, this.runId);
      } catch (error) {
        events.push(...this.gateFailure(ctx, syntheticG1((error as Error).message, { blueprint_id: blueprintId })));
        return events;
      }
      this.state.pendingPrefetch.set(requestId, { seedId, blueprintId });
      ctx.metadata.set("prefetch_request_id", requestId);
      ctx.metadata.set("pending_kernel", "true");
      events.push(info("prefetch_requested", { seed_id: seedId, blueprint_id: blueprintId, request_id: requestId }));
      return events;
    }

    const decision = this.kernelBreaker.allow();
    if (decision.event !== undefined) events.push(this.breakerEvent(seedId, decision.event));
    if (!decision.allowed) {
      events.push(...this.gateFailure(ctx, syntheticG1("breaker_denied", { state: breakerStateName(this.kernelBreaker.snapshot().state) })));
      return events;
    }

    const cached = this.gpuCache?.get(blueprintId);
    if (this.gpuCache !== undefined) ctx.metadata.set("kernel_cache", cached !== undefined ? "hit" : "miss");
    let kernel: Kernel;
    let usedFallback = false;
    if (cached !== undefined) {
      // DESIGN decision 22: a hit reports latency 0.
      kernel = cached;
      this.recordFetchWithinBudget(ctx, 0, events);
    } else {
      const started = this.clock.monotonic();
      let fetched: { kernel: Kernel; latencyMs?: number } | undefined;
      try {
        fetched = this.runtime.fetchKernel(blueprintId);
      } catch (error) {
        this.log(`kernel fetch for ${blueprintId} failed: ${(error as Error).message}`);
      }
      if (fetched === undefined) {
        events.push(this.breakerEvent(seedId, this.kernelBreaker.recordFailure("fetch_error")));
        kernel = this.loadFallback(ctx);
        usedFallback = true;
        ctx.lastKernelLatencyMs = this.latencyBudgetMs;
        ctx.metadata.set("kernel_cache", "fallback");
      } else {
        const latency = fetched.latencyMs ?? (this.clock.monotonic() - started) * 1000;
        if (latency > this.latencyBudgetMs) {
          ctx.lastKernelLatencyMs = latency;
          this.state.lastFetchLatencyMs = latency;
          events.push(this.breakerEvent(seedId, this.kernelBreaker.recordFailure("latency_budget_exceeded")));
          kernel = this.loadFallback(ctx);
          usedFallback = true;
        } else {
          kernel = fetched.kernel;
          this.recordFetchWithinBudget(ctx, latency, events);
        }
      }
    }

    const conflict = this.attachKernel(ctx, kernel, events);
    if (conflict !== undefined) {
      events.push(...this.gateFailure(ctx, syntheticG1(conflict, { error: "registry_conflict" })));
      return events;
    }
    ctx.kernelAttached = true;
    // DESIGN decision 4: only a genuinely fetched kernel is cached under the requested id.
    if (cached === undefined && !usedFallback) this.gpuCache?.set(blueprintId, kernel);
    events.push(...this.finaliseAttachment(ctx));
    return events;
  }

  protected recordFetchWithinBudget(ctx: SeedContext, latency: number, events: TelemetryEvent[]): void {
    ctx.lastKernelLatencyMs = latency;
    this.state.lastFetchLatencyMs = latency;
    ctx.usedFallback = false;
    this.state.lastFallbackUsed = false;
    const success = this.kernelBreaker.recordSuccess();
    if (success !== undefined) events.push(this.breakerEvent(ctx.seedId, success));
  }

  /** Spec §8.3. */
  protected loadFallback(ctx: SeedContext): Kernel {
    this.state.lastFallbackUsed = true;
    ctx.usedFallback = true;
    ctx.metadata.set("performance_status", "fallback");
    if (this.fallbackBlueprintId !== undefined) {
      try {
        return this.runtime.fetchKernel(this.fallbackBlueprintId).kernel;
      } catch (error) {
        this.log(`fallback blueprint ${this.fallbackBlueprintId} failed: ${(error as Error).message}`);
      }
    }
    return IDENTITY_KERNEL;
  }

  /** Spec §8.4 with DESIGN decision 13. Returns the registry conflict message, if any. */
  protected attachKernel(ctx: SeedContext, kernel: Kernel, events: TelemetryEvent[]): string | undefined {
    ctx.kernelAttached = true;
    if (!ctx.metadata.has("interface_checks")) ctx.metadata.set("interface_checks", "ok");
    ctx.kernel = kernel;
    const trainable = kernel.parameters.filter((p) => p.trainable).map((p) => kernelParameterKey(ctx.seedId, p));
    this.openSession(ctx, trainable);
    try {
      this.registry.registerSeed(ctx.seedId, trainable);
    } catch (error) {
      if (error instanceof ParameterConflictError) return error.message;
      throw error;
    }
    this.memory.kernelCache.set(ctx.seedId, kernel);
    if (trainable.some((key) => this.state.hostParameters.has(key))) events.push(...this.recordViolation(ctx.seedId));
    return undefined;
  }

  /** Spec §8.2 under the configured pacing. */
  protected finaliseAttachment(ctx: SeedContext): TelemetryEvent[] {
    const events: TelemetryEvent[] = [];
    if (!this.ensureGate(ctx, Gate.SEED_GATE_G1_GRADIENT_HEALTH, events)) return events;
    this.transition(ctx, Stage.SEED_STAGE_TRAINING);
    if (this.pacing === "driven") return events;
    const steps: [Stage, Gate][] = [
      [Stage.SEED_STAGE_BLENDING, Gate.SEED_GATE_G2_STABILITY],
      [Stage.SEED_STAGE_SHADOWING, Gate.SEED_GATE_G3_INTERFACE],
      [Stage.SEED_STAGE_PROBATIONARY, Gate.SEED_GATE_G4_SYSTEM_IMPACT],
    ];
    for (const [stage, gate] of steps) {
      if (ctx.stage === Stage.SEED_STAGE_CULLED || ctx.stage === Stage.SEED_STAGE_TERMINATED) break;
      if (!this.ensureGate(ctx, gate, events)) break;
      this.transition(ctx, stage);
    }
    return events;
  }


  /** Spec §5.4 (resume). */
  protected resume(seedId: string): TelemetryEvent[] {
    const ctx = this.state.seeds.get(seedId);
    if (ctx === undefined) return [];
    const events: TelemetryEvent[] = [];
    ctx.metadata.set("paused", "false");
    const blueprintId = ctx.metadata.get("blueprint_id");
    let kernel: Kernel | undefined;
    let fromCache = false;
    let fellBack = false;
    if (blueprintId !== undefined) {
      kernel = this.gpuCache?.get(blueprintId);
      fromCache = kernel !== undefined;
      if (kernel === undefined) {
        try {
          const fetched = this.runtime.fetchKernel(blueprintId);
          kernel = fetched.kernel;
          ctx.lastKernelLatencyMs = fetched.latencyMs ?? 0;
        } catch (error) {
          this.log(`resume fetch for ${blueprintId} failed: ${(error as Error).message}`);
          kernel = this.loadFallback(ctx);
          fellBack = true;
        }
      }
    }
    let attached = false;
    if (kernel !== undefined) {
      const conflict = this.attachKernel(ctx, kernel, events);
      if (conflict !== undefined) {
        events.push(info("seed_resumed", { seed_id: seedId, blueprint_id: blueprintId ?? "", cache: fromCache ? "hit" : "miss" }));
        events.push(...this.gateFailure(ctx, syntheticG1(conflict, { error: "registry_conflict" })));
        return events;
      }
      ctx.kernelAttached = true;
      attached = true;
      // DESIGN decision 4: cache what this resume genuinely fetched, never its fallback (a seed
      // that germinated on the fallback still caches a kernel it now fetches successfully).
      if (!fromCache && !fellBack && blueprintId !== undefined) this.gpuCache?.set(blueprintId, kernel);
    }
    events.push(info("seed_resumed", { seed_id: seedId, blueprint_id: blueprintId ?? "", cache: fromCache ? "hit" : "miss" }));
    if (attached) {
      // G1 only, not stored in last_gate_results (spec §5.4 step 5).
      const result = evaluateGate(Gate.SEED_GATE_G1_GRADIENT_HEALTH, this.gateInputs(ctx));
      if (result.passed) {
        events.push(this.gateEvent(seedId, result));
        ctx.metadata.set("performance_status", "nominal");
        events.push(...this.isolationBreakerSuccess(seedId));
      } else {
        events.push(...this.gateFailure(ctx, result));
        return events;
      }
    }
    const session = this.state.sessions.get(seedId);
    if (session !== undefined) {
      if (isCollectingStage(ctx.stage)) session.enableCollection();
      else {
        session.disableCollection();
        session.reset();
      }
    }
    return events;
  }

  // ---------------------------------------------------------------- prefetch replies

  /** Spec §14.3 (ready). The coordinator turns a ready reply for another blueprint into an error (decision 23). */
  processPrefetchReady(ready: KernelArtifactReady): void {
    const pending = this.state.pendingPrefetch.get(ready.requestId);
    if (pending === undefined) return;
    this.state.pendingPrefetch.delete(ready.requestId);
    const ctx = this.state.seeds.get(pending.seedId);
    if (ctx === undefined) return;
    const events: TelemetryEvent[] = [info("prefetch_ready", { seed_id: pending.seedId, blueprint_id: pending.blueprintId, request_id: ready.requestId })];
    ctx.metadata.set("pending_kernel", "false");
    let kernel: Kernel;
    try {
      kernel = this.runtime.fetchKernel(pending.blueprintId).kernel;
    } catch (error) {
      events.push(warning("prefetch_attach_failed", { seed_id: pending.seedId, reason: (error as Error).message }));
      this.queueSeedEvents(pending.seedId, events, false);
      return;
    }
    const conflict = this.attachKernel(ctx, kernel, events);
    if (conflict !== undefined) {
      events.push(...this.gateFailure(ctx, syntheticG1(conflict, { error: "registry_conflict" })));
    } else {
      ctx.kernelAttached = true;
      events.push(...this.finaliseAttachment(ctx));
    }
    this.queueSeedEvents(pending.seedId, events, false);
  }

  /** Spec §14.3 (error): the seed is culled and embargoed. */
  processPrefetchError(error: KernelArtifactError): void {
    const pending = this.state.pendingPrefetch.get(error.requestId);
    if (pending === undefined) return;
    this.state.pendingPrefetch.delete(error.requestId);
    const ctx = this.state.seeds.get(pending.seedId);
    if (ctx === undefined) return;
    ctx.metadata.set("pending_kernel", "false");
    const events = [warning("prefetch_error", { seed_id: pending.seedId, blueprint_id: pending.blueprintId, reason: error.reason })];
    events.push(...this.gateFailure(ctx, syntheticG1(error.reason, { blueprint_id: pending.blueprintId })));
    this.queueSeedEvents(pending.seedId, events, false);
  }

  /** A bus message Kasmina refused (bad signature, undecodable): reported on the global queue. */
  reportBusRejection(reason: string, stream: string): void {
    this.queueGlobalEvents([warning("prefetch_message_rejected", { reason, stream })]);
  }

  pendingPrefetchCount(): number {
    return this.state.pendingPrefetch.size;
  }
}
