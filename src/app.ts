// Composition root: builds the domain from configuration and ports, and hands the server its API.
import type { Tracer } from "@opentelemetry/api";
import type { KasminaConfig } from "./config.js";
import { BlueprintCatalog } from "./infra/blueprint-catalog.js";
import { CommandVerifier } from "./kasmina/command-verifier.js";
import { systemClock, type Clock, type MetricsPort } from "./kasmina/ports.js";
import { SeedManager } from "./kasmina/seed-manager.js";
import { unimplementedApi, type KasminaApi } from "./server/api.js";
import { createKasminaApi } from "./server/kasmina-api.js";
import { createGradientApi } from "./server/report-gradients.js";
import { isolationSessionFactory, selectBackend, type IsolationSessionConfig } from "./isolation/index.js";

export interface AppDeps {
  metrics: MetricsPort;
  tracer?: Tracer;
  log: (message: string) => void;
  version: string;
  clock?: Clock;
}

export interface App {
  api: KasminaApi;
  manager: SeedManager;
  isolationBackend: string;
  /** Health changes driven by the app itself (e.g. a prefetch loop failing and recovering). */
  onHealthChange(listener: (healthy: boolean) => void): void;
  /** Stops background work; watch streams end. */
  close(): Promise<void>;
}

export async function createApp(config: KasminaConfig, deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? systemClock;
  const runtime = config.blueprintCatalog === undefined ? BlueprintCatalog.builtin() : BlueprintCatalog.fromFile(config.blueprintCatalog);
  const verifier =
    config.secret === undefined
      ? undefined
      : new CommandVerifier({
          secret: config.secret,
          clock,
          nonceTtlSeconds: config.nonceTtlSeconds,
          freshnessWindowSeconds: config.freshnessWindowSeconds,
        });
  // An explicitly requested backend that cannot load fails start-up; auto falls back and logs why.
  const backend = await selectBackend(config.isolationBackend, deps.log);
  const sessionConfig: IsolationSessionConfig = {
    threshold: config.isolationThreshold,
    projectionSamples: config.projectionSamples,
    backend,
  };
  const manager = new SeedManager({
    runtime,
    clock,
    metrics: deps.metrics,
    log: deps.log,
    ...(verifier === undefined ? {} : { verifier }),
    latencyBudgetMs: config.latencyBudgetMs,
    fallbackBlueprintId: config.fallbackBlueprint,
    embargoSeconds: config.embargoSeconds,
    cacheTtlSeconds: config.cacheTtlSeconds,
    gcFrequency: config.gcFrequency,
    alphaTotalSteps: config.alphaTotalSteps,
    alphaTemperature: config.alphaTemperature,
    pacing: config.lifecyclePacing,
    trainingRunId: config.trainingRunId,
    isolation: isolationSessionFactory(sessionConfig),
  });
  let resolveDraining: () => void = () => undefined;
  const draining = new Promise<void>((resolve) => {
    resolveDraining = resolve;
  });
  const isolationBackend = backend.name;
  const api: KasminaApi = {
    ...unimplementedApi(),
    ...createKasminaApi({
      manager,
      version: deps.version,
      isolationBackend,
      prefetchIssue: () => undefined,
      draining,
      metrics: deps.metrics,
    }),
    ...createGradientApi({ manager, sessionConfig, backendName: isolationBackend }),
  };
  const healthListeners: ((healthy: boolean) => void)[] = [];
  return {
    api,
    manager,
    isolationBackend,
    onHealthChange: (listener) => healthListeners.push(listener),
    async close() {
      resolveDraining();
    },
  };
}
