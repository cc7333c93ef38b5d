// Telemetry flush (spec §9–§10): per-seed and global event queues, packets, the outbound log,
// and Tamiyo's annotations (spec §5.8).
import { type AdaptationCommand, HealthStatus, MessagePriority, messagePriorityToJSON, type MetricPoint, type TelemetryEvent, TelemetryLevel, type TelemetryPacket } from "../leyline.js";
import { stageName } from "./lifecycle.js";
import { type GlobalFigures, globalHealth, globalMetrics, seedHealth, seedMetrics } from "./packet-content.js";
import type { SeedContext } from "./seed-context.js";
import { type Attributes, buildPacket, event, info, priorityOfEvents, warning } from "./telemetry.js";
import { fmt, TAMIYO_KEYS } from "./run-types.js";
import { RunCore } from "./run-core.js";

export abstract class TelemetryFlush extends RunCore {
  /** Spec §10 / §9.7: queue on a seed; flush at once on removal or CRITICAL. */
  queueSeedEvents(seedId: string, events: TelemetryEvent[], removeAfterFlush: boolean): void {
    this.produced?.push(...events);
    const ctx = this.state.seeds.get(seedId) ?? this.createEphemeral(seedId);
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
    this.state.globalQueue.pushAll(events);
    this.state.globalPriority = priorityOfEvents(events, this.state.globalPriority);
    if (this.state.globalPriority === MessagePriority.MESSAGE_PRIORITY_CRITICAL) this.flushGlobal(undefined);
  }

  protected flushSeedNow(ctx: SeedContext, remove: boolean): void {
    this.emit(this.buildSeedPacket(ctx, undefined));
    ctx.pendingPriority = MessagePriority.MESSAGE_PRIORITY_NORMAL;
    ctx.metadata.delete("pending_removal");
    if (remove) {
      this.state.seeds.delete(ctx.seedId);
      this.state.ephemeral.delete(ctx.seedId);
      return;
    }
    // Spec §2.4 quirk kept: an immediate flush without removal makes an ephemeral seed permanent.
    this.state.ephemeral.delete(ctx.seedId);
  }

  /** Spec §9.7 finalize_step; returns the number of packets emitted. */
  finalizeStep(stepIndex: bigint | undefined): number {
    let emitted = 0;
    // Spec §9.5: the global metrics prepended to the seed packets are computed once per flush.
    let globals: MetricPoint[] | undefined;
    for (const ctx of [...this.state.seeds.values()]) {
      if (ctx.queue.length === 0 && (stepIndex === undefined || stepIndex === ctx.lastStepEmitted)) continue;
      globals ??= globalMetrics(this.globalFigures());
      this.emit(this.buildSeedPacket(ctx, stepIndex, globals));
      emitted += 1;
      ctx.pendingPriority = MessagePriority.MESSAGE_PRIORITY_NORMAL;
      ctx.lastStepEmitted = stepIndex;
      if (this.state.ephemeral.has(ctx.seedId)) {
        this.state.seeds.delete(ctx.seedId);
        this.state.ephemeral.delete(ctx.seedId);
      }
    }
    if (this.state.globalQueue.length > 0) {
      this.flushGlobal(stepIndex);
      emitted += 1;
    }
    return emitted;
  }

  protected flushGlobal(stepIndex: bigint | undefined): void {
    const priority = this.state.globalPriority;
    const events = this.state.globalQueue.drain();
    this.state.globalPriority = MessagePriority.MESSAGE_PRIORITY_NORMAL;
    if (this.state.lastFallbackUsed) events.push(warning("fallback_applied", { lat: fmt(this.state.lastFetchLatencyMs, 1) }));
    if (this.state.globalViolations > 0) events.push(warning("isolation_violations", { violations: String(this.state.globalViolations) }));
    const figures = this.globalFigures();
    const packet = buildPacket({
      packetId: `kasmina-global-${this.state.packetCounter}`,
      wallMs: this.clock.wallMs(),
      metrics: globalMetrics(figures),
      events,
      ...globalHealth(figures),
      indicators: { seeds: String(this.state.seeds.size), priority: messagePriorityToJSON(priority), step_index: stepIndex === undefined ? "" : stepIndex.toString() },
    });
    this.emit({ packet, priority });
  }

  protected buildSeedPacket(
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
      packetId: `kasmina-seed-${ctx.seedId}-${this.state.packetCounter}`,
      wallMs: this.clock.wallMs(),
      metrics: [...globals, ...seedMetrics(ctx, this.state.sessions.get(ctx.seedId))],
      events,
      ...health,
      indicators: { seed_id: ctx.seedId, priority: messagePriorityToJSON(priority), step_index: stepIndex === undefined ? "" : stepIndex.toString() },
    });
    return { packet, priority };
  }

  /** Spec §9.7 emit: telemetry cache, outbound log (and its watchers), counter, last priority. */
  protected emit({ packet, priority }: { packet: TelemetryPacket; priority: MessagePriority }): void {
    this.memory.telemetryCache.set(packet.packetId, packet);
    this.state.packetCounter += 1;
    this.state.lastPriorityValue = priority;
    this.packets.append(packet);
  }

  protected globalFigures(): GlobalFigures {
    return {
      contexts: this.state.seeds.size,
      violations: this.state.globalViolations,
      lastFetchLatencyMs: this.state.lastFetchLatencyMs,
      lastFallbackUsed: this.state.lastFallbackUsed,
      latencyBudgetMs: this.latencyBudgetMs,
      kernelBreaker: this.kernelBreaker.snapshot(),
      kernelCache: this.memory.kernelCache.stats(),
      gpuCache: this.gpuCacheStats(),
      telemetryCacheSize: this.memory.telemetryCache.stats().size,
      lastRollbackLatencyMs: this.state.lastRollbackLatencyMs,
    };
  }

  // ---------------------------------------------------------------- Tamiyo annotations

  protected tamiyoEvents(command: AdaptationCommand, seedTarget: string): TelemetryEvent[] {
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
  protected tamiyoAnnotations(command: AdaptationCommand, seedTarget: string): TelemetryEvent[] {
    const events = this.tamiyoEvents(command, seedTarget);
    if (events.length === 0 || seedTarget === "") return events;
    const ctx = this.state.seeds.get(seedTarget) ?? this.createEphemeral(seedTarget);
    if (events.some((e) => e.description === "degraded_inputs")) ctx.metadata.set("tamiyo_conservative_fallback", "true");
    for (const key of TAMIYO_KEYS) {
      const value = command.annotations.get(key);
      if (value !== undefined) ctx.metadata.set(`tamiyo_${key}`, value);
    }
    return events;
  }
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
