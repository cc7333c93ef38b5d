// Composition root: builds the domain from configuration and ports, and hands the server its API.
import type { Tracer } from "@opentelemetry/api";
import { ConfigError, type KasminaConfig } from "./config.js";
import { BlueprintCatalog, CatalogError } from "./infra/blueprint-catalog.js";
import { CommandVerifier } from "./kasmina/command-verifier.js";
import { systemClock, type Clock, type MetricsPort } from "./kasmina/ports.js";
import { SeedManager } from "./kasmina/seed-manager.js";
import type { KasminaApi } from "./server/api.js";
import { createKasminaApi } from "./server/kasmina-api.js";
import { createGradientApi } from "./server/report-gradients.js";
import { createSketchApi } from "./server/gradient-sketch.js";
import { isolationSessionFactory, selectBackend, type IsolationSessionConfig } from "./isolation/index.js";
import { otelTracing } from "./infra/otel-tracing.js";
import { createPrefetch, type PrefetchStack } from "./prefetch/setup.js";
import { noopTracing, type TracingPort } from "./kasmina/ports.js";
import { managerSnapshot, registerOperatorGauges } from "./kasmina/operator-gauges.js";

export interface AppDeps {
  metrics: MetricsPort;
  tracer?: Tracer;
  /** Overrides `tracer` (tests read spans back through an in-memory exporter). */
  tracing?: TracingPort;
  log: (message: string) => void;
  version: string;
  clock?: Clock;
}

export interface App {
  api: KasminaApi;
  manager: SeedManager;
  isolationBackend: string;
  /** The kernel prefetch stack, when a bus is configured. */
  prefetch: PrefetchStack | undefined;
  /** Health changes driven by the app itself (e.g. a prefetch loop failing and recovering). */
  onHealthChange(listener: (healthy: boolean) => void): void;
  /** False while a real prefetch failure persists (KAS-H1-006). */
  healthy(): boolean;
  /** Stops background work; watch streams end. */
  close(): Promise<void>;
}

/** The built-in catalog, or the file's; a bad file is a configuration error naming the variable. */
function loadCatalog(path: string | undefined): BlueprintCatalog {
  if (path === undefined) return BlueprintCatalog.builtin();
  try {
    return BlueprintCatalog.fromFile(path);
  } catch (error) {
    if (error instanceof CatalogError) throw new ConfigError("KASMINA_BLUEPRINT_CATALOG", `${path}: ${error.message}`);
    throw error;
  }
}

export async function createApp(config: KasminaConfig, deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? systemClock;
  const runtime = loadCatalog(config.blueprintCatalog);
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
  const backend = await selectBackend(config.isolationBackend, deps.log).catch((error: unknown) => {
    throw new ConfigError("KASMINA_ISOLATION_BACKEND", (error as Error).message);
  });
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
  // Operator gauges, read at scrape time; one snapshot per training run (today the one manager).
  const runId = config.trainingRunId ?? "default";
  registerOperatorGauges(deps.metrics, () => [managerSnapshot(runId, manager)]);
  const healthListeners: ((healthy: boolean) => void)[] = [];
  const setHealthy = (healthy: boolean): void => healthListeners.forEach((listener) => listener(healthy));
  let lastIssue: string | undefined;
  // Kernel prefetch over the bus (KASMINA_BUS=memory|redis); replies reach the manager through
  // these closures, since the manager is built after the coordinator.
  const prefetch = createPrefetch(config, {
    catalog: {
      lookup: (blueprintId) => {
        const entry = runtime.lookup(blueprintId);
        return entry === undefined ? undefined : { artifactRef: entry.kernel.artifactRef, checksum: entry.kernel.checksum };
      },
    },
    handlers: {
      onReady: (ready) => manager.processPrefetchReady(ready),
      onError: (error) => manager.processPrefetchError(error),
    },
    tracing: deps.tracing ?? (deps.tracer === undefined ? noopTracing : otelTracing(deps.tracer)),
    clock,
    onRejected: (rejection) => manager.reportBusRejection(`${rejection.reason}${rejection.detail === undefined ? "" : `: ${rejection.detail}`}`, rejection.stream),
    // Loops retry with backoff and report every failed round; the log says each problem once.
    onIssue: (issue) => {
      if (issue.message !== lastIssue) deps.log(`prefetch: ${issue.message}`);
      lastIssue = issue.message;
      setHealthy(false);
    },
    onRecovered: () => {
      deps.log("prefetch: consumer loops recovered");
      lastIssue = undefined;
      setHealthy(true);
    },
    onResponderFailure: (error) => deps.log(`prefetch responder: ${error.message}`),
  });
  if (prefetch !== undefined) {
    manager.setPrefetch({ requestKernel: (seedId, blueprintId, runId) => prefetch.coordinator.requestKernel(seedId, blueprintId, runId) });
    await prefetch.start();
  }
  let resolveDraining: () => void = () => undefined;
  const draining = new Promise<void>((resolve) => {
    resolveDraining = resolve;
  });
  const isolationBackend = backend.name;
  const api: KasminaApi = {
    ...createKasminaApi({
      manager,
      version: deps.version,
      isolationBackend,
      prefetchIssue: () => prefetch?.coordinator.pollTaskIssue()?.message,
      draining,
      metrics: deps.metrics,
    }),
    ...createGradientApi({ manager, sessionConfig, backendName: isolationBackend }),
    ...createSketchApi({ manager, sessionConfig, backendName: isolationBackend, maxMessageBytes: config.maxMessageBytes }),
  };
  return {
    api,
    manager,
    isolationBackend,
    onHealthChange: (listener) => healthListeners.push(listener),
    healthy: () => prefetch?.coordinator.pollTaskIssue() === undefined,
    prefetch,
    async close() {
      resolveDraining();
      await prefetch?.close();
    },
  };
}
