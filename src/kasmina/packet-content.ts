// What a telemetry packet reports besides its events (spec §9.3, §9.5): the global and per-seed
// metrics and the health status and summary. Pure functions of the state the manager passes in.
import { HealthStatus, SeedLifecycleStage as Stage, type MetricPoint } from "../leyline.js";
import type { BreakerSnapshot } from "./circuit-breaker.js";
import type { SeedContext } from "./seed-context.js";
import { metric } from "./telemetry.js";

export interface CacheStatsView {
  size: number;
  hitRate: number;
  evictions: number;
  capacity: number;
}

/** Manager-wide figures behind the global metrics and the global health. */
export interface GlobalFigures {
  contexts: number;
  violations: number;
  lastFetchLatencyMs: number;
  lastFallbackUsed: boolean;
  latencyBudgetMs: number;
  kernelBreaker: BreakerSnapshot;
  kernelCache: { size: number; hitRate: number; evictions: number };
  gpuCache: CacheStatsView | undefined;
  telemetryCacheSize: number;
  lastRollbackLatencyMs: number;
}

export interface Health {
  status: HealthStatus;
  summary: string;
}

export function globalMetrics(g: GlobalFigures): MetricPoint[] {
  const out: MetricPoint[] = [
    metric("kasmina.seeds.active", g.contexts, "count"),
    metric("kasmina.isolation.violations", g.violations, "count"),
  ];
  // A cache hit reports 0, which reads as "no value" (decision 22); a fallback fetch has none.
  if (!g.lastFallbackUsed && g.lastFetchLatencyMs !== 0) out.push(metric("kasmina.kernel.fetch_latency_ms", g.lastFetchLatencyMs, "ms"));
  out.push(
    metric("kasmina.breaker.state", g.kernelBreaker.state, "state"),
    metric("kasmina.breaker.failures", g.kernelBreaker.failureCount, "count"),
    metric("kasmina.cache.kernel_size", g.kernelCache.size, "count"),
    metric("kasmina.cache.kernel_hit_rate", g.kernelCache.hitRate, "ratio"),
    metric("kasmina.cache.kernel_evictions", g.kernelCache.evictions, "count"),
  );
  if (g.gpuCache !== undefined) {
    out.push(
      metric("kasmina.cache.gpu_size", g.gpuCache.size, "count"),
      metric("kasmina.cache.gpu_capacity", g.gpuCache.capacity, "count"),
      metric("kasmina.cache.gpu_hit_rate", g.gpuCache.hitRate, "ratio"),
      metric("kasmina.cache.gpu_evictions", g.gpuCache.evictions, "count"),
    );
  }
  out.push(metric("kasmina.cache.telemetry_size", g.telemetryCacheSize, "count"));
  if (g.lastRollbackLatencyMs > 0) out.push(metric("kasmina.rollback.latency_ms", g.lastRollbackLatencyMs, "ms"));
  return out;
}

/** Spec §9.3, global packet. */
export function globalHealth(g: GlobalFigures): Health {
  if (g.violations > 0) return { status: HealthStatus.HEALTH_STATUS_UNHEALTHY, summary: "violations" };
  if (g.lastFallbackUsed || g.lastFetchLatencyMs > g.latencyBudgetMs) {
    return { status: HealthStatus.HEALTH_STATUS_DEGRADED, summary: g.lastFallbackUsed ? "fallback" : "latency_high" };
  }
  return { status: HealthStatus.HEALTH_STATUS_HEALTHY, summary: "nominal" };
}

/** Spec §9.3, seed packet; a healthy seed reports "nominal" whatever its (sticky) status says. */
export function seedHealth(ctx: Readonly<SeedContext>, latencyBudgetMs: number): Health {
  if (ctx.isolationViolations > 0) return { status: HealthStatus.HEALTH_STATUS_UNHEALTHY, summary: "violations" };
  if (ctx.usedFallback || ctx.lastKernelLatencyMs > latencyBudgetMs) {
    return { status: HealthStatus.HEALTH_STATUS_DEGRADED, summary: ctx.usedFallback ? "fallback" : "latency_high" };
  }
  return { status: HealthStatus.HEALTH_STATUS_HEALTHY, summary: "nominal" };
}

export function seedMetrics(
  ctx: Readonly<SeedContext>,
  isolation: { stats(): { hostNorm: number; seedNorm: number; dotProduct: number } } | undefined,
): MetricPoint[] {
  const a = { seed_id: ctx.seedId };
  const out = [
    metric("kasmina.seed.stage", ctx.stage, "state", a),
    metric("kasmina.seed.alpha", ctx.alpha, "ratio", a),
    metric("kasmina.seed.kernel_attached", ctx.kernelAttached ? 1 : 0, "flag", a),
    metric("kasmina.seed.kernel_latency_ms", ctx.lastKernelLatencyMs, "ms", a),
    metric("kasmina.seed.last_kernel_latency_ms", ctx.lastKernelLatencyMs, "ms", a),
    metric("kasmina.seed.isolation_violations", ctx.isolationViolations, "count", a),
    metric("kasmina.seed.fallback_used", ctx.usedFallback ? 1 : 0, "flag", a),
  ];
  if (ctx.stage === Stage.SEED_STAGE_BLENDING) out.push(metric("kasmina.seed.alpha_steps", ctx.alphaSteps, "count", a));
  if (isolation !== undefined) {
    try {
      const stats = isolation.stats();
      out.push(
        metric("kasmina.seed.isolation.dot", stats.dotProduct, "dot", a),
        metric("kasmina.seed.isolation.host_norm", stats.hostNorm, "grad", a),
        metric("kasmina.seed.isolation.seed_norm", stats.seedNorm, "grad", a),
      );
    } catch {
      // Spec §9.5: isolation stats failures only omit these three metrics.
    }
  }
  return out;
}
