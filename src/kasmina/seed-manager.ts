// The seed manager (spec §2–§15 with the decisions of DESIGN §3): commands, lifecycle and gates,
// kernels, isolation sessions, memory governance and telemetry. It owns no transport: the server
// layer validates and decodes requests, then calls these methods.
import {
  CommandType,
  HealthStatus,
  MessagePriority,
  SeedLifecycleGate as Gate,
  SeedLifecycleStage as Stage,
  SeedOperation,
  TelemetryLevel,
  commandTypeToJSON,
  messagePriorityToJSON,
  seedLifecycleGateToJSON,
  seedOperationToJSON,
  type AdaptationCommand,
  type KernelArtifactError,
  type KernelArtifactReady,
  type MetricPoint,
  type SeedState,
  type TelemetryEvent,
  type TelemetryPacket,
} from "../leyline.js";
import { AlphaSchedule } from "./alpha-schedule.js";
import { BreakerState, breakerStateName, CircuitBreaker, type BreakerEvent } from "./circuit-breaker.js";
import type { CommandVerifier, RejectionReason } from "./command-verifier.js";
import { invalidArgument } from "./errors.js";
import { evaluateGate, type GateInputs, type GateResult } from "./gates.js";
import { GpuKernelCache } from "./gpu-kernel-cache.js";
import { IDENTITY_KERNEL, kernelParameterKey, type Kernel, type KernelRuntime } from "./kernel-runtime.js";
import { blendAllowed, canTransition, isCollectingStage, stageName } from "./lifecycle.js";
import { emergencyEventAttributes, gcEventAttributes, MemoryGovernor, type GcResult } from "./memory-governor.js";
import { ParameterConflictError, ParameterRegistry } from "./parameter-registry.js";
import { noopMetrics, type Clock, type Counter, type MetricsPort } from "./ports.js";
import { globalHealth, globalMetrics, seedHealth, seedMetrics, type CacheStatsView, type GlobalFigures } from "./packet-content.js";
import { makeEventQueue, SeedContext } from "./seed-context.js";
import type { SeedQueue } from "./seed-queue.js";
import {
  buildPacket,
  event,
  info,
  PacketLog,
  priorityOfEvents,
  warning,
  type Attributes,
} from "./telemetry.js";

export type LifecyclePacing = "driven" | "immediate";

/** The largest alpha_steps AdvanceAlphaResponse can carry (uint32). */
export const MAX_ALPHA_STEPS = 0xffff_ffff;

/** What the isolation engine offers the manager: one session per seed (spec §13). */
export interface IsolationSessionHandle {
  readonly collecting: boolean;
  enableCollection(): void;
  disableCollection(): void;
  reset(): void;
  close(): void;
  stats(): { hostNorm: number; seedNorm: number; dotProduct: number };
}

export interface IsolationPort {
  openSession(seedId: string, hostParameters: readonly string[], seedParameters: readonly string[]): IsolationSessionHandle;
}

/** What the prefetch coordinator offers the manager (spec §14). */
export interface PrefetchPort {
  /** Publishes a request and returns its id; throws when it cannot (e.g. no training run id). */
  requestKernel(seedId: string, blueprintId: string, trainingRunId: string): string;
  /** Forget outstanding requests (retire): late replies are then ignored. */
  cancel?(requestId: string): void;
}

export interface ParameterSpecInput {
  key: string;
  shape: readonly number[];
  trainable: boolean;
  elementBytes: number;
}

export interface SeedManagerOptions {
  runtime: KernelRuntime;
  clock: Clock;
  metrics?: MetricsPort;
  log?: (message: string) => void;
  /** Absent ⇒ every command is refused with `verifier_unavailable`. */
  verifier?: CommandVerifier;
  latencyBudgetMs?: number;
  /** `undefined` disables the fallback blueprint (identity kernel only). */
  fallbackBlueprintId?: string | undefined;
  embargoSeconds?: number;
  /** ≤ 0 disables the GPU kernel cache. */
  gpuCacheCapacity?: number;
  cacheTtlSeconds?: number;
  gcFrequency?: number;
  alphaTotalSteps?: number;
  alphaTemperature?: number;
  pacing?: LifecyclePacing;
  isolation?: IsolationPort;
  prefetch?: PrefetchPort;
  trainingRunId?: string | undefined;
  packetLogCapacity?: number;
  teacherBudgetGb?: number;
}

export type CommandOutcome =
  | { accepted: true; events: TelemetryEvent[]; seedId: string | undefined }
  | { accepted: false; reason: RejectionReason | "verifier_unavailable"; events: TelemetryEvent[] };

export interface GcReport {
  ran: boolean;
  skippedReason: string;
  kernelCacheExpired: number;
  telemetryCacheExpired: number;
  gcCounter: number;
  gcEpoch: number;
}

export type { CacheStatsView } from "./packet-content.js";

const TAMIYO_KEYS = ["feature_coverage", "risk_reason", "blueprint_risk", "blueprint_tier", "blueprint_stage"] as const;
const GLOBAL_QUEUE_CAPACITY = 4096;
const TEACHER_BUDGET_GB = 7.0;

/** Driven pacing (DESIGN decision 27): the stage each seed operation needs, the stage it moves to and its gate. */
const DRIVEN_STEPS: ReadonlyMap<SeedOperation, { from: Stage; to: Stage; gate: Gate | undefined }> = new Map([
  [SeedOperation.SEED_OP_START_TRAINING, { from: Stage.SEED_STAGE_GERMINATED, to: Stage.SEED_STAGE_TRAINING, gate: Gate.SEED_GATE_G1_GRADIENT_HEALTH }],
  [SeedOperation.SEED_OP_START_GRAFTING, { from: Stage.SEED_STAGE_TRAINING, to: Stage.SEED_STAGE_BLENDING, gate: Gate.SEED_GATE_G2_STABILITY }],
  [SeedOperation.SEED_OP_STABILIZE, { from: Stage.SEED_STAGE_BLENDING, to: Stage.SEED_STAGE_SHADOWING, gate: Gate.SEED_GATE_G3_INTERFACE }],
  [SeedOperation.SEED_OP_EVALUATE, { from: Stage.SEED_STAGE_SHADOWING, to: Stage.SEED_STAGE_PROBATIONARY, gate: Gate.SEED_GATE_G4_SYSTEM_IMPACT }],
  [SeedOperation.SEED_OP_FOSSILIZE, { from: Stage.SEED_STAGE_PROBATIONARY, to: Stage.SEED_STAGE_FOSSILIZED, gate: undefined }],
]);

const fmt = (value: number, digits: number): string => value.toFixed(digits);
const bool = (value: boolean): string => (value ? "true" : "false");

interface PendingPrefetch {
  seedId: string;
  blueprintId: string;
}

export class SeedManager {
  private readonly runtime: KernelRuntime;
  private readonly clock: Clock;
  private readonly log: (message: string) => void;
  private readonly verifier: CommandVerifier | undefined;
  readonly latencyBudgetMs: number;
  private readonly fallbackBlueprintId: string | undefined;
  private readonly embargoSeconds: number;
  private readonly pacing: LifecyclePacing;
  private readonly isolation: IsolationPort | undefined;
  private prefetch: PrefetchPort | undefined;
  private readonly trainingRunId: string | undefined;
  private readonly teacherBudgetGb: number;

  readonly kernelBreaker: CircuitBreaker;
  readonly isolationBreaker: CircuitBreaker;
  readonly alphaSchedule: AlphaSchedule;
  readonly memory: MemoryGovernor<unknown, TelemetryPacket>;
  readonly gpuCache: GpuKernelCache<Kernel> | undefined;
  readonly registry = new ParameterRegistry();
  readonly packets: PacketLog;

  private readonly seeds = new Map<string, SeedContext>();
  private readonly ephemeral = new Set<string>();
  private readonly sessions = new Map<string, IsolationSessionHandle>();
  private readonly rollbacks = new Map<string, Record<string, string>>();
  private readonly pendingPrefetch = new Map<string, PendingPrefetch>();
  private readonly globalQueue: SeedQueue<TelemetryEvent>;
  private globalPriority = MessagePriority.MESSAGE_PRIORITY_NORMAL;
  private hostParameters = new Set<string>();
  private packetCounter = 0;
  private lastPriorityValue = MessagePriority.MESSAGE_PRIORITY_NORMAL;
  private globalViolations = 0;
  private lastFetchLatencyMs = 0;
  private lastFallbackUsed = false;
  private lastRollbackLatencyMs = 0;
  private epoch = 0;
  /** Events produced by the command being handled, for ApplyCommandResponse.events. */
  private produced: TelemetryEvent[] | undefined;

  private readonly commandsCounter: Counter;
  private readonly queueDroppedCounter: Counter;
  private readonly gcRunsCounter: Counter;
  private readonly violationsCounter: Counter;

  constructor(options: SeedManagerOptions) {
    this.runtime = options.runtime;
    this.clock = options.clock;
    this.log = options.log ?? (() => undefined);
    this.verifier = options.verifier;
    this.latencyBudgetMs = options.latencyBudgetMs ?? 10.0;
    this.fallbackBlueprintId = "fallbackBlueprintId" in options ? options.fallbackBlueprintId : "BP001";
    this.embargoSeconds = Math.max(0, options.embargoSeconds ?? 30.0);
    this.pacing = options.pacing ?? "driven";
    this.isolation = options.isolation;
    this.prefetch = options.prefetch;
    this.trainingRunId = options.trainingRunId;
    this.teacherBudgetGb = options.teacherBudgetGb ?? TEACHER_BUDGET_GB;
    const metrics = options.metrics ?? noopMetrics;
    this.commandsCounter = metrics.counter("kasmina.commands", "Adaptation commands handled, by type and outcome");
    this.queueDroppedCounter = metrics.counter("kasmina.seed_queue.dropped", "Telemetry events discarded by full seed queues");
    this.gcRunsCounter = metrics.counter("kasmina.gc.runs", "Periodic memory GC runs");
    this.violationsCounter = metrics.counter("kasmina.isolation.violations", "Gradient isolation violations recorded");
    this.kernelBreaker = new CircuitBreaker({ clock: this.clock, failureThreshold: 3, timeoutMs: 60_000, successThreshold: 2 });
    this.isolationBreaker = new CircuitBreaker({ clock: this.clock, failureThreshold: 3, timeoutMs: 30_000, successThreshold: 2 });
    this.alphaSchedule = new AlphaSchedule({
      ...(options.alphaTotalSteps === undefined ? {} : { totalSteps: options.alphaTotalSteps }),
      ...(options.alphaTemperature === undefined ? {} : { temperature: options.alphaTemperature }),
    });
    this.memory = new MemoryGovernor<unknown, TelemetryPacket>({
      clock: this.clock,
      metrics,
      kernelTtlSeconds: options.cacheTtlSeconds ?? 300,
      telemetryTtlSeconds: options.cacheTtlSeconds ?? 300,
      gcFrequency: options.gcFrequency ?? 10,
    });
    const capacity = options.gpuCacheCapacity ?? 32;
    this.gpuCache = capacity > 0 ? new GpuKernelCache<Kernel>(capacity) : undefined;
    this.packets = new PacketLog(options.packetLogCapacity ?? 10_000);
    this.globalQueue = makeEventQueue("kasmina", (n) => this.queueDroppedCounter.add(n, { queue: "global" }), GLOBAL_QUEUE_CAPACITY);
  }

  setPrefetch(prefetch: PrefetchPort | undefined): void {
    this.prefetch = prefetch;
  }

  // ---------------------------------------------------------------- queries

  get currentEpoch(): number {
    return this.epoch;
  }

  get globalViolationCount(): number {
    return this.globalViolations;
  }

  get lastPriority(): MessagePriority {
    return this.lastPriorityValue;
  }

  get hasVerifier(): boolean {
    return this.verifier !== undefined;
  }

  /** Managed (non-ephemeral) seed ids. */
  seedIds(): string[] {
    return [...this.seeds.keys()].filter((id) => !this.ephemeral.has(id));
  }

  /** Every context, ephemeral ones included (as `kasmina.seeds.active` counts them). */
  get contextCount(): number {
    return this.seeds.size;
  }

  hasSeed(seedId: string): boolean {
    return this.seeds.has(seedId);
  }

  stageOf(seedId: string): Stage | undefined {
    return this.seeds.get(seedId)?.stage;
  }

  seedView(seedId: string): Readonly<SeedContext> | undefined {
    return this.seeds.get(seedId);
  }

  isEphemeral(seedId: string): boolean {
    return this.ephemeral.has(seedId);
  }

  isolationSession(seedId: string): IsolationSessionHandle | undefined {
    return this.sessions.get(seedId);
  }

  rollbackPayload(seedId: string): Record<string, string> | undefined {
    const record = this.rollbacks.get(seedId);
    return record === undefined ? undefined : { ...record };
  }

  validateParameters(seedId: string, parameters: Iterable<string>): boolean {
    return this.registry.validateUpdate(seedId, parameters);
  }

  seedState(seedId: string): SeedState | undefined {
    const ctx = this.seeds.get(seedId);
    return ctx === undefined ? undefined : this.stateOf(ctx);
  }

  /** Spec §15.1 with DESIGN decision 7 (blend_allowed). */
  exportSeedStates(): SeedState[] {
    return [...this.seeds.values()].map((ctx) => this.stateOf(ctx));
  }

  gpuCacheStats(): CacheStatsView | undefined {
    if (this.gpuCache === undefined) return undefined;
    const s = this.gpuCache.stats();
    return { size: s.size, hitRate: s.hitRate, evictions: s.evictions, capacity: s.capacity };
  }

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

  private reject(command: AdaptationCommand, reason: RejectionReason | "verifier_unavailable"): void {
    const attributes: Attributes = reason === "verifier_unavailable" ? { reason } : { reason, command_id: command.commandId };
    const events = [event("command_rejected", TelemetryLevel.TELEMETRY_LEVEL_ERROR, attributes)];
    // Resilience path (spec §5.9): Tamiyo's annotations are still reported, without metadata.
    events.push(...this.tamiyoEvents(command, ""));
    this.queueGlobalEvents(events);
  }

  private dispatch(command: AdaptationCommand): { events: TelemetryEvent[]; seedTarget: string; removeAfterFlush: boolean } {
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
          events.push(...this.graft(seedId, op.blueprintId, op.parameters, command.annotations.get("training_run_id")));
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

  private forceKernelBreaker(desired: number, rationale: string): TelemetryEvent[] {
    try {
      const result = this.kernelBreaker.forceState(desired, rationale === "" ? "manual" : rationale);
      return [this.breakerEvent("kasmina", result)];
    } catch (error) {
      return [warning("breaker_command_invalid", { desired_state: String(desired), error: (error as Error).message })];
    }
  }

  // ---------------------------------------------------------------- germinate / attach

  /** Spec §8.1 with DESIGN decisions 4, 8, 9, 10, 16 and 27. */
  private graft(seedId: string, blueprintId: string, parameters: ReadonlyMap<string, number>, runIdAnnotation: string | undefined): TelemetryEvent[] {
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

    const trainingRunId = (runIdAnnotation ?? "").trim() || this.trainingRunId;
    if (this.prefetch !== undefined && trainingRunId === undefined) {
      // DESIGN decision 8: no placeholder run id; the germinate fails loudly and changes nothing more.
      events.push(
        event("prefetch_request_failed", TelemetryLevel.TELEMETRY_LEVEL_ERROR, {
          seed_id: seedId,
          blueprint_id: blueprintId,
          reason: "prefetch request missing training_run_id (annotation training_run_id or KASMINA_TRAINING_RUN_ID)",
        }),
      );
      return events;
    }
    if (!this.transitionOrReject(ctx, Stage.SEED_STAGE_GERMINATED, events)) return events;

    if (this.prefetch !== undefined && trainingRunId !== undefined) {
      let requestId: string;
      try {
        requestId = this.prefetch.requestKernel(seedId, blueprintId, trainingRunId);
      } catch (error) {
        events.push(...this.gateFailure(ctx, syntheticG1((error as Error).message, { blueprint_id: blueprintId })));
        return events;
      }
      this.pendingPrefetch.set(requestId, { seedId, blueprintId });
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
          this.lastFetchLatencyMs = latency;
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

  private recordFetchWithinBudget(ctx: SeedContext, latency: number, events: TelemetryEvent[]): void {
    ctx.lastKernelLatencyMs = latency;
    this.lastFetchLatencyMs = latency;
    ctx.usedFallback = false;
    this.lastFallbackUsed = false;
    const success = this.kernelBreaker.recordSuccess();
    if (success !== undefined) events.push(this.breakerEvent(ctx.seedId, success));
  }

  /** Spec §8.3. */
  private loadFallback(ctx: SeedContext): Kernel {
    this.lastFallbackUsed = true;
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
  private attachKernel(ctx: SeedContext, kernel: Kernel, events: TelemetryEvent[]): string | undefined {
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
    if (trainable.some((key) => this.hostParameters.has(key))) events.push(...this.recordViolation(ctx.seedId));
    return undefined;
  }

  private openSession(ctx: SeedContext, seedParameters: readonly string[]): void {
    this.closeSession(ctx.seedId);
    if (this.isolation === undefined || this.hostParameters.size === 0) return;
    try {
      const session = this.isolation.openSession(ctx.seedId, [...this.hostParameters], seedParameters);
      if (!isCollectingStage(ctx.stage)) session.disableCollection();
      this.sessions.set(ctx.seedId, session);
    } catch (error) {
      this.log(`isolation session for ${ctx.seedId} could not be opened: ${(error as Error).message}`);
    }
  }

  private closeSession(seedId: string): void {
    this.sessions.get(seedId)?.close();
    this.sessions.delete(seedId);
  }

  /** Spec §8.2 under the configured pacing. */
  private finaliseAttachment(ctx: SeedContext): TelemetryEvent[] {
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

  /** DESIGN decision 27: one stage per seed operation, behind its gate. */
  private advanceStage(seedId: string, operation: SeedOperation): TelemetryEvent[] {
    const step = DRIVEN_STEPS.get(operation);
    if (this.pacing === "immediate" || step === undefined) return [];
    const events: TelemetryEvent[] = [];
    const ctx = this.seeds.get(seedId);
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

  // ---------------------------------------------------------------- gates

  private gateInputs(ctx: SeedContext, extra: Pick<GateInputs, "blueprintId" | "parameters"> = {}): GateInputs {
    return {
      ...extra,
      isolationViolations: ctx.isolationViolations,
      kernelAttached: ctx.kernelAttached,
      lastLatencyMs: ctx.lastKernelLatencyMs,
      latencyBudgetMs: this.latencyBudgetMs,
      fallbackUsed: ctx.usedFallback,
      hostParamsRegistered: this.hostParameters.size > 0,
      interfaceChecksOk: ctx.metadata.get("interface_checks") === "ok",
      performanceStatus: ctx.metadata.get("performance_status") ?? "nominal",
      resetClean: !ctx.kernelAttached && ctx.isolationViolations === 0,
    };
  }

  /** Spec §4.3. Returns whether the gate passed; on failure the seed has been handled. */
  private ensureGate(ctx: SeedContext, gate: Gate, events: TelemetryEvent[], extra: Pick<GateInputs, "blueprintId" | "parameters"> = {}): boolean {
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

  private gateEvent(seedId: string, result: GateResult): TelemetryEvent {
    const attributes: Attributes = { seed_id: seedId, gate: seedLifecycleGateToJSON(result.gate), passed: bool(result.passed), ...result.attributes };
    if (result.reason !== "") attributes["reason"] = result.reason;
    return result.passed ? info("gate_event", attributes) : warning("gate_event", attributes);
  }

  private isolationBreakerSuccess(seedId: string): TelemetryEvent[] {
    const result = this.isolationBreaker.recordSuccess();
    return result === undefined ? [] : [this.isolationBreakerEvent(result, seedId)];
  }

  /** Spec §8.5. */
  private gateFailure(ctx: SeedContext, result: GateResult): TelemetryEvent[] {
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

  // ---------------------------------------------------------------- retire, pause, resume

  /** Spec §8.6 with DESIGN decision 5. */
  private retire(seedId: string): TelemetryEvent[] {
    const ctx = this.seeds.get(seedId);
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
    for (const [requestId, pending] of this.pendingPrefetch) {
      if (pending.seedId !== seedId) continue;
      this.pendingPrefetch.delete(requestId);
      this.prefetch?.cancel?.(requestId);
    }
    this.recordRollback(ctx, "retired");
    events.push(info("rollback_ready", { seed_id: seedId, stage: stageName(ctx.stage) }));
    ctx.metadata.set("pending_removal", "true");
    return events;
  }

  /** Spec §5.4 (pause). */
  private pause(seedId: string): TelemetryEvent[] {
    const ctx = this.seeds.get(seedId);
    if (ctx === undefined) return [];
    ctx.metadata.set("paused", "true");
    ctx.metadata.set("performance_status", "paused");
    ctx.kernel = IDENTITY_KERNEL;
    ctx.kernelAttached = false;
    const session = this.sessions.get(seedId);
    session?.disableCollection();
    session?.reset();
    return [warning("seed_paused", { seed_id: seedId })];
  }

  /** Spec §5.4 (resume). */
  private resume(seedId: string): TelemetryEvent[] {
    const ctx = this.seeds.get(seedId);
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
    const session = this.sessions.get(seedId);
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
    const pending = this.pendingPrefetch.get(ready.requestId);
    if (pending === undefined) return;
    this.pendingPrefetch.delete(ready.requestId);
    const ctx = this.seeds.get(pending.seedId);
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
    const pending = this.pendingPrefetch.get(error.requestId);
    if (pending === undefined) return;
    this.pendingPrefetch.delete(error.requestId);
    const ctx = this.seeds.get(pending.seedId);
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
    return this.pendingPrefetch.size;
  }

  // ---------------------------------------------------------------- violations, alpha, registration

  /** Spec §13.5. */
  recordIsolationViolation(seedId: string): { totalViolations: number; breakerState: number } {
    const events = this.recordViolation(seedId);
    if (seedId !== "") this.queueSeedEvents(seedId, events, false);
    else this.queueGlobalEvents(events);
    return { totalViolations: this.globalViolations, breakerState: this.isolationBreaker.snapshot().state };
  }

  private recordViolation(seedId: string): TelemetryEvent[] {
    this.globalViolations += 1;
    this.violationsCounter.add(1);
    if (seedId !== "") {
      let ctx = this.seeds.get(seedId);
      if (ctx === undefined) ctx = this.createEphemeral(seedId);
      ctx.isolationViolations += 1;
      ctx.metadata.set("performance_status", "violations");
    }
    const breaker = this.isolationBreaker.recordFailure("isolation_violation");
    const open = this.isolationBreaker.snapshot().state === BreakerState.OPEN;
    const attributes: Attributes = { violations: String(this.globalViolations) };
    if (seedId !== "") attributes["seed_id"] = seedId;
    return [
      event("violation_recorded", open ? TelemetryLevel.TELEMETRY_LEVEL_CRITICAL : TelemetryLevel.TELEMETRY_LEVEL_WARNING, attributes),
      this.isolationBreakerEvent(breaker, seedId === "" ? undefined : seedId),
    ];
  }

  /** Spec §15.4; unknown seeds are the caller's NOT_FOUND. */
  advanceAlpha(seedId: string, steps: number): { alpha: number; alphaSteps: number; stage: Stage } | undefined {
    const ctx = this.seeds.get(seedId);
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
    this.hostParameters = new Set(parameters.map((p) => p.key));
    for (const seedId of [...this.sessions.keys()]) this.closeSession(seedId);
    for (const ctx of this.seeds.values()) {
      if (!ctx.kernelAttached || ctx.kernel === undefined) continue;
      const kernel = ctx.kernel;
      this.openSession(
        ctx,
        kernel.parameters.filter((p) => p.trainable).map((p) => kernelParameterKey(ctx.seedId, p)),
      );
    }
    return this.hostParameters.size;
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
    this.epoch = epoch;
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

  // ---------------------------------------------------------------- Tamiyo annotations

  private tamiyoEvents(command: AdaptationCommand, seedTarget: string): TelemetryEvent[] {
    const present = TAMIYO_KEYS.filter((key) => command.annotations.has(key));
    if (present.length === 0) return [];
    const attributes: Attributes = seedTarget === "" ? {} : { seed_id: seedTarget };
    for (const key of present) attributes[key] = command.annotations.get(key) ?? "";
    const events = [info("tamiyo_annotations", attributes)];
    const coverageText = command.annotations.get("feature_coverage");
    const coverage = coverageText === undefined ? 1.0 : parseFloatStrict(coverageText);
    if (coverage !== undefined && coverage < 0.3) {
      const level = coverage < 0.1 ? TelemetryLevel.TELEMETRY_LEVEL_CRITICAL : TelemetryLevel.TELEMETRY_LEVEL_WARNING;
      events.push(event("degraded_inputs", level, { ...attributes, coverage_avg: fmt(coverage, 3) }));
    }
    return events;
  }

  /** Spec §5.8: events plus seed metadata. */
  private tamiyoAnnotations(command: AdaptationCommand, seedTarget: string): TelemetryEvent[] {
    const events = this.tamiyoEvents(command, seedTarget);
    if (events.length === 0 || seedTarget === "") return events;
    const ctx = this.seeds.get(seedTarget) ?? this.createEphemeral(seedTarget);
    if (events.some((e) => e.description === "degraded_inputs")) ctx.metadata.set("tamiyo_conservative_fallback", "true");
    for (const key of TAMIYO_KEYS) {
      const value = command.annotations.get(key);
      if (value !== undefined) ctx.metadata.set(`tamiyo_${key}`, value);
    }
    return events;
  }

  // ---------------------------------------------------------------- transitions

  private transition(ctx: SeedContext, target: Stage): boolean {
    if (ctx.stage === target) return true;
    if (!canTransition(ctx.stage, target)) return false;
    ctx.stage = target;
    this.afterTransition(ctx);
    return true;
  }

  /** DESIGN decision 9: a command-driven illegal transition is reported and stops the command. */
  private transitionOrReject(ctx: SeedContext, target: Stage, events: TelemetryEvent[]): boolean {
    if (this.transition(ctx, target)) return true;
    events.push(
      warning("transition_rejected", {
        seed_id: ctx.seedId,
        stage: stageName(ctx.stage),
        target_stage: stageName(target),
        reason: `transition ${stageName(ctx.stage)} -> ${stageName(target)} is not allowed`,
      }),
    );
    return false;
  }

  /** Spec §3.3. */
  private afterTransition(ctx: SeedContext): void {
    const session = this.sessions.get(ctx.seedId);
    switch (ctx.stage) {
      case Stage.SEED_STAGE_TRAINING:
        session?.enableCollection();
        break;
      case Stage.SEED_STAGE_BLENDING:
        session?.enableCollection();
        ctx.alphaSteps += 1;
        ctx.alpha = this.alphaSchedule.value(ctx.alphaSteps);
        ctx.metadata.set("alpha", fmt(ctx.alpha, 4));
        break;
      case Stage.SEED_STAGE_SHADOWING:
      case Stage.SEED_STAGE_PROBATIONARY:
      case Stage.SEED_STAGE_FOSSILIZED:
        session?.disableCollection();
        session?.reset();
        ctx.alpha = 1.0;
        ctx.metadata.set("alpha", "1.0000");
        break;
      case Stage.SEED_STAGE_DORMANT:
        session?.disableCollection();
        session?.reset();
        ctx.alpha = 0;
        ctx.alphaSteps = 0;
        ctx.metadata.delete("alpha");
        break;
      default:
        session?.disableCollection();
        session?.reset();
    }
  }

  // ---------------------------------------------------------------- contexts

  private newContext(seedId: string): SeedContext {
    const ctx = new SeedContext(
      seedId,
      makeEventQueue(seedId, (n) => this.queueDroppedCounter.add(n, { queue: "seed" })),
    );
    this.seeds.set(seedId, ctx);
    return ctx;
  }

  /** Germinate's context: DESIGN decision 16 clears an ephemeral mark. */
  private getOrCreate(seedId: string): SeedContext {
    this.ephemeral.delete(seedId);
    return this.seeds.get(seedId) ?? this.newContext(seedId);
  }

  private createEphemeral(seedId: string): SeedContext {
    const ctx = this.newContext(seedId);
    this.ephemeral.add(seedId);
    return ctx;
  }

  private recordRollback(ctx: SeedContext, reason: string): number {
    const started = performance.now();
    this.rollbacks.set(ctx.seedId, { seed_id: ctx.seedId, stage: stageName(ctx.stage), reason });
    const latency = performance.now() - started;
    this.lastRollbackLatencyMs = latency;
    return latency;
  }

  private stateOf(ctx: SeedContext): SeedState {
    return {
      seedId: ctx.seedId,
      stage: ctx.stage,
      gradientNorm: 0,
      learningRate: 0,
      layerDepth: 0,
      metrics: new Map([
        ["alpha", ctx.alpha],
        ["alpha_steps", ctx.alphaSteps],
        ["alpha_total_steps", this.alphaSchedule.totalSteps],
        ["alpha_temperature", this.alphaSchedule.temperature],
        ["blend_allowed", blendAllowed(ctx.stage) ? 1.0 : 0.0],
      ]),
      ageEpochs: this.epoch,
      riskScore: 0,
    };
  }

  // ---------------------------------------------------------------- events and flushing

  private breakerEvent(seedId: string, e: BreakerEvent): TelemetryEvent {
    const attributes = { seed_id: seedId, breaker_state: breakerStateName(e.state), action: e.action, reason: e.reason };
    return e.action === "count" ? info("breaker_event", attributes) : warning("breaker_event", attributes);
  }

  private isolationBreakerEvent(e: BreakerEvent, seedId: string | undefined): TelemetryEvent {
    const attributes: Attributes = { component: "isolation", breaker_state: breakerStateName(e.state), action: e.action, reason: e.reason };
    if (seedId !== undefined) attributes["seed_id"] = seedId;
    return event("isolation_breaker", e.state === BreakerState.OPEN ? TelemetryLevel.TELEMETRY_LEVEL_CRITICAL : TelemetryLevel.TELEMETRY_LEVEL_WARNING, attributes);
  }

  /** Spec §10 / §9.7: queue on a seed; flush at once on removal or CRITICAL. */
  queueSeedEvents(seedId: string, events: TelemetryEvent[], removeAfterFlush: boolean): void {
    this.produced?.push(...events);
    const ctx = this.seeds.get(seedId) ?? this.createEphemeral(seedId);
    const droppedBefore = ctx.queue.dropped;
    ctx.queue.pushAll(events);
    let priority = priorityOfEvents(events, ctx.pendingPriority);
    // The drop marker is a WARNING, so a queue that dropped is at least HIGH.
    if (ctx.queue.dropped > droppedBefore) priority = Math.max(priority, MessagePriority.MESSAGE_PRIORITY_HIGH);
    ctx.pendingPriority = priority;
    if (removeAfterFlush || ctx.pendingPriority === MessagePriority.MESSAGE_PRIORITY_CRITICAL) {
      this.flushSeedNow(ctx, removeAfterFlush);
    }
  }

  /** DESIGN decision 15: a CRITICAL global event flushes at once. */
  queueGlobalEvents(events: TelemetryEvent[]): void {
    if (events.length === 0) return;
    this.produced?.push(...events);
    this.globalQueue.pushAll(events);
    this.globalPriority = priorityOfEvents(events, this.globalPriority);
    if (this.globalPriority === MessagePriority.MESSAGE_PRIORITY_CRITICAL) this.flushGlobal(undefined);
  }

  private flushSeedNow(ctx: SeedContext, remove: boolean): void {
    this.emit(this.buildSeedPacket(ctx, undefined));
    ctx.pendingPriority = MessagePriority.MESSAGE_PRIORITY_NORMAL;
    ctx.metadata.delete("pending_removal");
    if (remove) {
      this.seeds.delete(ctx.seedId);
      this.ephemeral.delete(ctx.seedId);
      return;
    }
    // Spec §2.4 quirk kept: an immediate flush without removal makes an ephemeral seed permanent.
    this.ephemeral.delete(ctx.seedId);
  }

  /** Spec §9.7 finalize_step; returns the number of packets emitted. */
  finalizeStep(stepIndex: bigint | undefined): number {
    let emitted = 0;
    // Spec §9.5: the global metrics prepended to the seed packets are computed once per flush.
    let globals: MetricPoint[] | undefined;
    for (const ctx of [...this.seeds.values()]) {
      if (ctx.queue.length === 0 && (stepIndex === undefined || stepIndex === ctx.lastStepEmitted)) continue;
      globals ??= globalMetrics(this.globalFigures());
      this.emit(this.buildSeedPacket(ctx, stepIndex, globals));
      emitted += 1;
      ctx.pendingPriority = MessagePriority.MESSAGE_PRIORITY_NORMAL;
      ctx.lastStepEmitted = stepIndex;
      if (this.ephemeral.has(ctx.seedId)) {
        this.seeds.delete(ctx.seedId);
        this.ephemeral.delete(ctx.seedId);
      }
    }
    if (this.globalQueue.length > 0) {
      this.flushGlobal(stepIndex);
      emitted += 1;
    }
    return emitted;
  }

  private flushGlobal(stepIndex: bigint | undefined): void {
    const priority = this.globalPriority;
    const events = this.globalQueue.drain();
    this.globalPriority = MessagePriority.MESSAGE_PRIORITY_NORMAL;
    if (this.lastFallbackUsed) events.push(warning("fallback_applied", { lat: fmt(this.lastFetchLatencyMs, 1) }));
    if (this.globalViolations > 0) events.push(warning("isolation_violations", { violations: String(this.globalViolations) }));
    const figures = this.globalFigures();
    const packet = buildPacket({
      packetId: `kasmina-global-${this.packetCounter}`,
      wallMs: this.clock.wallMs(),
      metrics: globalMetrics(figures),
      events,
      ...globalHealth(figures),
      indicators: { seeds: String(this.seeds.size), priority: messagePriorityToJSON(priority), step_index: stepIndex === undefined ? "" : stepIndex.toString() },
    });
    this.emit({ packet, priority });
  }

  private buildSeedPacket(
    ctx: SeedContext,
    stepIndex: bigint | undefined,
    globals: readonly MetricPoint[] = globalMetrics(this.globalFigures()),
  ): { packet: TelemetryPacket; priority: MessagePriority } {
    const events = ctx.queue.drain();
    const stage = stageName(ctx.stage);
    ctx.metadata.set("last_stage_event", stage);
    events.push(info("seed_stage", { seed_id: ctx.seedId, stage, alpha: fmt(ctx.alpha, 4) }));
    const priority = Math.max(ctx.pendingPriority, priorityOfEvents(events));
    const health = seedHealth(ctx, this.latencyBudgetMs);
    // Spec §9.3 side effect: an unhealthy summary becomes the status; "nominal" only fills a gap.
    if (health.status !== HealthStatus.HEALTH_STATUS_HEALTHY || !ctx.metadata.has("performance_status")) {
      ctx.metadata.set("performance_status", health.summary);
    }
    const packet = buildPacket({
      packetId: `kasmina-seed-${ctx.seedId}-${this.packetCounter}`,
      wallMs: this.clock.wallMs(),
      metrics: [...globals, ...seedMetrics(ctx, this.sessions.get(ctx.seedId))],
      events,
      ...health,
      indicators: { seed_id: ctx.seedId, priority: messagePriorityToJSON(priority), step_index: stepIndex === undefined ? "" : stepIndex.toString() },
    });
    return { packet, priority };
  }

  /** Spec §9.7 emit: telemetry cache, outbound log (and its watchers), counter, last priority. */
  private emit({ packet, priority }: { packet: TelemetryPacket; priority: MessagePriority }): void {
    this.memory.telemetryCache.set(packet.packetId, packet);
    this.packetCounter += 1;
    this.lastPriorityValue = priority;
    this.packets.append(packet);
  }

  private globalFigures(): GlobalFigures {
    return {
      contexts: this.seeds.size,
      violations: this.globalViolations,
      lastFetchLatencyMs: this.lastFetchLatencyMs,
      lastFallbackUsed: this.lastFallbackUsed,
      latencyBudgetMs: this.latencyBudgetMs,
      kernelBreaker: this.kernelBreaker.snapshot(),
      kernelCache: this.memory.kernelCache.stats(),
      gpuCache: this.gpuCacheStats(),
      telemetryCacheSize: this.memory.telemetryCache.stats().size,
      lastRollbackLatencyMs: this.lastRollbackLatencyMs,
    };
  }
}

function syntheticG1(reason: string, attributes: Attributes): GateResult {
  return { gate: Gate.SEED_GATE_G1_GRADIENT_HEALTH, passed: false, reason, attributes };
}

/** Python float(): surrounding whitespace allowed, the whole string must be a number (NaN/inf too). */
function parseFloatStrict(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (t === "nan" || t === "+nan" || t === "-nan") return Number.NaN;
  if (t === "inf" || t === "+inf" || t === "infinity" || t === "+infinity") return Number.POSITIVE_INFINITY;
  if (t === "-inf" || t === "-infinity") return Number.NEGATIVE_INFINITY;
  if (t === "" || !/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(t)) return undefined;
  return Number(t);
}

