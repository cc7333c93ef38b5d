// The seed manager (spec §2–§15 with the decisions of DESIGN §3): commands, lifecycle and gates,
// kernels, isolation sessions, memory governance and telemetry. It owns no transport: the server
// layer validates and decodes requests, then calls these methods.
// The manager is layered along its seams: RunCore (state, contexts, transitions) → TelemetryFlush →
// LifecycleGates → KernelGrafting → LifecycleAdvance → SeedManager (command dispatch, spec §5).
import { type AdaptationCommand, CommandType, commandTypeToJSON, SeedOperation, seedOperationToJSON, type TelemetryEvent, TelemetryLevel } from "../leyline.js";
import type { RejectionReason } from "./command-verifier.js";
import { emergencyEventAttributes } from "./memory-governor.js";
import { type Attributes, event, info, warning } from "./telemetry.js";
import type { CommandOutcome } from "./run-types.js";
import { LifecycleAdvance } from "./lifecycle-advance.js";
import { kernelParameterKey } from "./kernel-runtime.js";
import { syntheticG1 } from "./lifecycle-gates.js";
import type { SeedContext } from "./seed-context.js";

export * from "./run-types.js";

export class SeedManager extends LifecycleAdvance {
  // ---------------------------------------------------------------- commands

  /** Spec §5.1. The caller has validated the command's shape (server layer). */
  handleCommand(command: AdaptationCommand): CommandOutcome {
    this.memory.cleanup();
    const produced: TelemetryEvent[] = [];
    this.produced = produced;
    try {
      const commandType = commandTypeToJSON(command.commandType);
      if (this.verifier === undefined) {
        this.reject(command, "verifier_unavailable");
        this.commandsCounter.add(1, { command_type: commandType, outcome: "rejected", reason: "verifier_unavailable" });
        return { accepted: false, reason: "verifier_unavailable", events: produced };
      }
      const verdict = this.verifier.verify(command);
      if (!verdict.accepted) {
        this.reject(command, verdict.reason);
        this.commandsCounter.add(1, { command_type: commandType, outcome: "rejected", reason: verdict.reason });
        return { accepted: false, reason: verdict.reason, events: produced };
      }
      // DESIGN §2.1: a command signed for another run is refused (its id is spent: it was genuine and fresh).
      const signedRun = command.annotations.get("training_run_id");
      if (signedRun !== undefined && signedRun !== this.runId) {
        this.reject(command, "training_run_mismatch");
        this.commandsCounter.add(1, { command_type: commandType, outcome: "rejected", reason: "training_run_mismatch" });
        return { accepted: false, reason: "training_run_mismatch", events: produced };
      }
      const { events, seedTarget, removeAfterFlush } = this.dispatch(command);
      events.push(...this.tamiyoAnnotations(command, seedTarget));
      if (events.length > 0) {
        if (seedTarget !== "") this.queueSeedEvents(seedTarget, events, removeAfterFlush);
        else this.queueGlobalEvents(events);
      }
      this.commandsCounter.add(1, { command_type: commandType, outcome: "accepted", reason: "ok" });
      return { accepted: true, events: produced, seedId: seedTarget === "" ? undefined : seedTarget };
    } finally {
      this.produced = undefined;
    }
  }

  protected reject(command: AdaptationCommand, reason: RejectionReason | "verifier_unavailable" | "training_run_mismatch"): void {
    const attributes: Attributes = reason === "verifier_unavailable" ? { reason } : { reason, command_id: command.commandId };
    const events = [event("command_rejected", TelemetryLevel.TELEMETRY_LEVEL_ERROR, attributes)];
    // Resilience path (spec §5.9): Tamiyo's annotations are still reported, without metadata.
    events.push(...this.tamiyoEvents(command, ""));
    this.queueGlobalEvents(events);
  }

  protected dispatch(command: AdaptationCommand): { events: TelemetryEvent[]; seedTarget: string; removeAfterFlush: boolean } {
    const payload = command.payload;
    const type = command.commandType;
    if (type === CommandType.COMMAND_SEED && payload?.$case === "seedOperation") {
      const op = payload.value;
      const seedId = command.targetSeedId; // DESIGN decision 20: target_seed_id only
      const events: TelemetryEvent[] = [
        info("seed_operation", {
          command_type: commandTypeToJSON(type),
          operation: seedOperationToJSON(op.operation),
          seed_id: seedId,
          blueprint_id: op.blueprintId,
        }),
      ];
      let removeAfterFlush = false;
      // Spec §5.3: an empty seed id makes every operation a no-op; seed_operation then goes global.
      if (seedId === "") return { events, seedTarget: seedId, removeAfterFlush };
      switch (op.operation) {
        case SeedOperation.SEED_OP_GERMINATE:
          events.push(...this.graft(seedId, op.blueprintId, op.parameters));
          break;
        case SeedOperation.SEED_OP_CULL:
        case SeedOperation.SEED_OP_CANCEL:
          events.push(...this.retire(seedId));
          // Spec §5.3: CULL/CANCEL always flush at once and delete, so an unknown seed's
          // seed_operation event leaves no (ephemeral) context behind.
          removeAfterFlush = true;
          break;
        default:
          events.push(...this.advanceStage(seedId, op.operation));
      }
      return { events, seedTarget: seedId, removeAfterFlush };
    }
    if (type === CommandType.COMMAND_CIRCUIT_BREAKER && payload?.$case === "circuitBreaker") {
      return { events: this.forceKernelBreaker(payload.value.desiredState, payload.value.rationale), seedTarget: "", removeAfterFlush: false };
    }
    if (type === CommandType.COMMAND_OPTIMIZER) {
      const optimizerId = payload?.$case === "optimizerAdjustment" ? payload.value.optimizerId : "";
      return {
        events: [info("optimizer_adjust", { command_type: commandTypeToJSON(type), optimizer_id: optimizerId })],
        seedTarget: "",
        removeAfterFlush: false,
      };
    }
    if (type === CommandType.COMMAND_PAUSE) {
      const seedId = command.targetSeedId;
      const resume = (command.annotations.get("resume") ?? "").toLowerCase() === "true";
      return { events: resume ? this.resume(seedId) : this.pause(seedId), seedTarget: seedId, removeAfterFlush: false };
    }
    if (type === CommandType.COMMAND_EMERGENCY) {
      const includeTeacher = (command.annotations.get("include_teacher") ?? "").toLowerCase() === "true";
      const result = this.memory.emergencyCleanup(includeTeacher);
      return {
        events: [event("emergency_cleanup", TelemetryLevel.TELEMETRY_LEVEL_CRITICAL, emergencyEventAttributes(result, includeTeacher))],
        seedTarget: "",
        removeAfterFlush: false,
      };
    }
    return { events: [warning("unsupported_command", { command_type: commandTypeToJSON(type) })], seedTarget: "", removeAfterFlush: false };
  }

  protected forceKernelBreaker(desired: number, rationale: string): TelemetryEvent[] {
    try {
      const result = this.kernelBreaker.forceState(desired, rationale === "" ? "manual" : rationale);
      return [this.breakerEvent("kasmina", result)];
    } catch (error) {
      return [warning("breaker_command_invalid", { desired_state: String(desired), error: (error as Error).message })];
    }
  }

  /** CloseTrainingRun (DESIGN §2.1): every managed seed retired (rollback records written) and flushed. */
  retireAll(): number {
    const ids = this.seedIds();
    for (const seedId of ids) this.queueSeedEvents(seedId, this.retire(seedId), true);
    for (const seedId of [...this.state.sessions.keys()]) this.closeSession(seedId);
    return ids.length;
  }

  // ---------------------------------------------------------------- restart (DESIGN §2.2)

  /** A context restored by the state store. */
  adoptRestoredSeed(seedId: string, ephemeral: boolean): SeedContext {
    const ctx = this.newContext(seedId);
    if (ephemeral) this.state.ephemeral.add(seedId);
    return ctx;
  }

  /** Isolation sessions are not durable: attached seeds get fresh ones, at zero. */
  reopenSessions(): void {
    for (const ctx of this.state.seeds.values()) {
      if (!ctx.kernelAttached || ctx.kernel === undefined) continue;
      this.openSession(ctx, ctx.kernel.parameters.filter((p) => p.trainable).map((p) => kernelParameterKey(ctx.seedId, p)));
    }
  }

  /** Prefetch requests outstanding before a restart are published again, under new ids. */
  republishPending(): number {
    const prefetch = this.prefetch;
    if (prefetch === undefined) return 0;
    const pending = [...this.state.pendingPrefetch];
    this.state.pendingPrefetch.clear();
    for (const [, { seedId, blueprintId }] of pending) {
      const ctx = this.state.seeds.get(seedId);
      if (ctx === undefined) continue;
      try {
        const requestId = prefetch.requestKernel(seedId, blueprintId, this.runId);
        this.state.pendingPrefetch.set(requestId, { seedId, blueprintId });
        ctx.metadata.set("prefetch_request_id", requestId);
      } catch (error) {
        this.queueSeedEvents(seedId, this.gateFailure(ctx, syntheticG1((error as Error).message, { blueprint_id: blueprintId })), false);
      }
    }
    return pending.length;
  }
}
