// The state one training run owns (spec §2.1: seeds, ephemeral marks, sessions, rollback records,
// breakers, caches, queues, the packet log) and the helpers every part of the manager shares:
// contexts, transitions, breaker events and the read-only queries.
import type { MessagePriority} from "../leyline.js";
import { type SeedState, SeedLifecycleStage as Stage, type TelemetryEvent, TelemetryLevel, type TelemetryPacket } from "../leyline.js";
import { AlphaSchedule } from "./alpha-schedule.js";
import { type BreakerEvent, BreakerState, breakerStateName, CircuitBreaker } from "./circuit-breaker.js";
import type { CommandVerifier } from "./command-verifier.js";
import { GpuKernelCache } from "./gpu-kernel-cache.js";
import type { Kernel, KernelRuntime } from "./kernel-runtime.js";
import { blendAllowed, canTransition, stageName } from "./lifecycle.js";
import { MemoryGovernor } from "./memory-governor.js";
import { ParameterRegistry } from "./parameter-registry.js";
import { type Clock, type Counter, noopMetrics } from "./ports.js";
import type { CacheStatsView } from "./packet-content.js";
import { makeEventQueue, SeedContext } from "./seed-context.js";
import { type Attributes, event, info, PacketLog, warning } from "./telemetry.js";
import { newRunState, type RunState } from "./run-state.js";
import { fmt, GLOBAL_QUEUE_CAPACITY, type IsolationPort, type IsolationSessionHandle, type LifecyclePacing, type PrefetchPort, type SeedManagerOptions, TEACHER_BUDGET_GB } from "./run-types.js";

export abstract class RunCore {
  protected readonly runtime: KernelRuntime;
  protected readonly clock: Clock;
  protected readonly log: (message: string) => void;
  protected readonly verifier: CommandVerifier | undefined;
  readonly latencyBudgetMs: number;
  protected readonly fallbackBlueprintId: string | undefined;
  protected readonly embargoSeconds: number;
  protected readonly pacing: LifecyclePacing;
  protected readonly isolation: IsolationPort | undefined;
  protected prefetch: PrefetchPort | undefined;
  /** The training run this manager serves (DESIGN §2.1). */
  readonly runId: string;
  protected readonly teacherBudgetGb: number;

  readonly kernelBreaker: CircuitBreaker;
  readonly isolationBreaker: CircuitBreaker;
  readonly alphaSchedule: AlphaSchedule;
  readonly memory: MemoryGovernor<unknown, TelemetryPacket>;
  readonly gpuCache: GpuKernelCache<Kernel> | undefined;
  readonly registry = new ParameterRegistry();
  readonly packets: PacketLog;

  /** Everything this run owns that changes (DESIGN §2.1); the store persists it through run-state-codec.ts. */
  readonly state: RunState;
  /** Events produced by the command being handled, for ApplyCommandResponse.events. */
  protected produced: TelemetryEvent[] | undefined;

  protected readonly commandsCounter: Counter;
  protected readonly queueDroppedCounter: Counter;
  protected readonly gcRunsCounter: Counter;
  protected readonly violationsCounter: Counter;

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
    this.runId = options.trainingRunId ?? "default";
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
      ...(options.telemetryCacheMaxEntries === undefined ? {} : { telemetryMaxEntries: options.telemetryCacheMaxEntries }),
      gcFrequency: options.gcFrequency ?? 10,
    });
    const capacity = options.gpuCacheCapacity ?? 32;
    this.gpuCache = capacity > 0 ? new GpuKernelCache<Kernel>(capacity) : undefined;
    this.packets = new PacketLog(options.packetLogCapacity ?? 10_000);
    this.state = newRunState(makeEventQueue("kasmina", (n) => this.queueDroppedCounter.add(n, { queue: "global" }), GLOBAL_QUEUE_CAPACITY));
  }

  setPrefetch(prefetch: PrefetchPort | undefined): void {
    this.prefetch = prefetch;
  }

  // ---------------------------------------------------------------- queries

  get currentEpoch(): number {
    return this.state.epoch;
  }

  get globalViolationCount(): number {
    return this.state.globalViolations;
  }

  get lastPriority(): MessagePriority {
    return this.state.lastPriorityValue;
  }

  get hasVerifier(): boolean {
    return this.verifier !== undefined;
  }

  /** Managed (non-ephemeral) seed ids. */
  seedIds(): string[] {
    return [...this.state.seeds.keys()].filter((id) => !this.state.ephemeral.has(id));
  }

  /** Every context, ephemeral ones included (as `kasmina.seeds.active` counts them). */
  get contextCount(): number {
    return this.state.seeds.size;
  }

  hasSeed(seedId: string): boolean {
    return this.state.seeds.has(seedId);
  }

  stageOf(seedId: string): Stage | undefined {
    return this.state.seeds.get(seedId)?.stage;
  }

  seedView(seedId: string): Readonly<SeedContext> | undefined {
    return this.state.seeds.get(seedId);
  }

  isEphemeral(seedId: string): boolean {
    return this.state.ephemeral.has(seedId);
  }

  isolationSession(seedId: string): IsolationSessionHandle | undefined {
    return this.state.sessions.get(seedId);
  }

  rollbackPayload(seedId: string): Record<string, string> | undefined {
    const record = this.state.rollbacks.get(seedId);
    return record === undefined ? undefined : { ...record };
  }

  validateParameters(seedId: string, parameters: Iterable<string>): boolean {
    return this.registry.validateUpdate(seedId, parameters);
  }

  seedState(seedId: string): SeedState | undefined {
    const ctx = this.state.seeds.get(seedId);
    return ctx === undefined ? undefined : this.stateOf(ctx);
  }

  /** Spec §15.1 with DESIGN decision 7 (blend_allowed). */
  exportSeedStates(): SeedState[] {
    return [...this.state.seeds.values()].map((ctx) => this.stateOf(ctx));
  }

  gpuCacheStats(): CacheStatsView | undefined {
    if (this.gpuCache === undefined) return undefined;
    const s = this.gpuCache.stats();
    return { size: s.size, hitRate: s.hitRate, evictions: s.evictions, capacity: s.capacity };
  }

  // ---------------------------------------------------------------- transitions

  protected transition(ctx: SeedContext, target: Stage): boolean {
    if (ctx.stage === target) return true;
    if (!canTransition(ctx.stage, target)) return false;
    ctx.stage = target;
    this.afterTransition(ctx);
    return true;
  }

  /** DESIGN decision 9: a command-driven illegal transition is reported and stops the command. */
  protected transitionOrReject(ctx: SeedContext, target: Stage, events: TelemetryEvent[]): boolean {
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
  protected afterTransition(ctx: SeedContext): void {
    const session = this.state.sessions.get(ctx.seedId);
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

  protected newContext(seedId: string): SeedContext {
    const ctx = new SeedContext(
      seedId,
      makeEventQueue(seedId, (n) => this.queueDroppedCounter.add(n, { queue: "seed" })),
    );
    this.state.seeds.set(seedId, ctx);
    return ctx;
  }

  /** Germinate's context: DESIGN decision 16 clears an ephemeral mark. */
  protected getOrCreate(seedId: string): SeedContext {
    this.state.ephemeral.delete(seedId);
    return this.state.seeds.get(seedId) ?? this.newContext(seedId);
  }

  protected createEphemeral(seedId: string): SeedContext {
    const ctx = this.newContext(seedId);
    this.state.ephemeral.add(seedId);
    return ctx;
  }

  protected recordRollback(ctx: SeedContext, reason: string): number {
    const started = performance.now();
    this.state.rollbacks.set(ctx.seedId, { seed_id: ctx.seedId, stage: stageName(ctx.stage), reason });
    const latency = performance.now() - started;
    this.state.lastRollbackLatencyMs = latency;
    return latency;
  }

  protected stateOf(ctx: SeedContext): SeedState {
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
      ageEpochs: this.state.epoch,
      riskScore: 0,
    };
  }

  // ---------------------------------------------------------------- events and flushing

  protected breakerEvent(seedId: string, e: BreakerEvent): TelemetryEvent {
    const attributes = { seed_id: seedId, breaker_state: breakerStateName(e.state), action: e.action, reason: e.reason };
    return e.action === "count" ? info("breaker_event", attributes) : warning("breaker_event", attributes);
  }

  protected isolationBreakerEvent(e: BreakerEvent, seedId: string | undefined): TelemetryEvent {
    const attributes: Attributes = { component: "isolation", breaker_state: breakerStateName(e.state), action: e.action, reason: e.reason };
    if (seedId !== undefined) attributes["seed_id"] = seedId;
    return event("isolation_breaker", e.state === BreakerState.OPEN ? TelemetryLevel.TELEMETRY_LEVEL_CRITICAL : TelemetryLevel.TELEMETRY_LEVEL_WARNING, attributes);
  }

}
