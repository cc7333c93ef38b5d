// Composition root: builds the domain from configuration and ports, and hands the server its API.
import type { Tracer } from "@opentelemetry/api";
import { ConfigError, FUTURE_SKEW_SECONDS, type KasminaConfig } from "./config.js";
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
import { RedisBus } from "./infra/redis-bus.js";
import { MemoryStateStore } from "./infra/memory-state-store.js";
import { SqliteStateStore } from "./infra/sqlite-state-store.js";
import { EtcdStateStore } from "./infra/etcd-state-store.js";
import { StateStoreError, type StateStore } from "./kasmina/state-store.js";
import { TrainingRuns } from "./kasmina/training-runs.js";
import { CallRuns } from "./server/call-run.js";
import { managerSnapshot, registerOperatorGauges } from "./kasmina/operator-gauges.js";

export interface AppDeps {
  metrics: MetricsPort;
  tracer?: Tracer;
  /** Overrides `tracer` (tests read spans back through an in-memory exporter). */
  tracing?: TracingPort;
  log: (message: string) => void;
  version: string;
  clock?: Clock;
  /**
   * A state write failed: memory is ahead of the store. main.ts exits so a restart reloads what was
   * committed; the default logs only (tests).
   */
  onStoreFailure?: (error: Error) => void;
}

export interface App {
  api: KasminaApi;
  /** The default run's manager (calls without `kasmina-training-run` metadata). */
  readonly manager: SeedManager;
  runs: TrainingRuns;
  store: StateStore;
  isolationBackend: string;
  /** The kernel prefetch stack, when a bus is configured. */
  prefetch: PrefetchStack | undefined;
  /** Health changes driven by the app itself (e.g. a prefetch loop failing and recovering). */
  onHealthChange(listener: (healthy: boolean) => void): void;
  /** False while a real prefetch failure persists (KAS-H1-006). */
  healthy(): boolean;
  /** Stops background work; watch streams end. The state store stays open for calls still finishing. */
  close(): Promise<void>;
  /** After the server has stopped: commits what is pending and closes the state store. */
  closeStore(): Promise<void>;
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

/** KASMINA_STATE: the store, or a configuration error naming KASMINA_STATE_PATH (never a silent reset). */
function openStore(config: KasminaConfig, metrics: MetricsPort, clock: Clock, log: (message: string) => void): StateStore {
  if (config.state === "memory") return new MemoryStateStore(metrics, () => clock.wallMs());
  if (config.state === "etcd" && config.etcd !== undefined) {
    const etcd = config.etcd;
    // The lease deadline runs on the process's own monotonic clock (DESIGN §2.4), never a fake one.
    return new EtcdStateStore({ endpoints: etcd.endpoints, leaseMs: etcd.leaseMs, advertise: etcd.advertise, auth: etcd.auth, tls: etcd.tls, metrics, log, wallMs: () => clock.wallMs() });
  }
  try {
    return new SqliteStateStore(config.statePath, metrics, () => clock.wallMs());
  } catch (error) {
    if (error instanceof StateStoreError) throw new ConfigError("KASMINA_STATE_PATH", error.message);
    throw error;
  }
}

export async function createApp(config: KasminaConfig, deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? systemClock;
  const runtime = loadCatalog(config.blueprintCatalog);
  const store = openStore(config, deps.metrics, clock, deps.log);
  // Replicas: the lease loop starts now; an unreachable etcd leaves the service NOT_SERVING, not down.
  if (store instanceof EtcdStateStore) await store.start();
  const verifier =
    config.secret === undefined
      ? undefined
      : new CommandVerifier({
          secret: config.secret,
          clock,
          nonceTtlSeconds: config.nonceTtlSeconds,
          freshnessWindowSeconds: config.freshnessWindowSeconds,
          futureSkewSeconds: FUTURE_SKEW_SECONDS,
        });
  // An explicitly requested backend that cannot load fails start-up; auto falls back and logs why.
  const backend = await selectBackend(config.isolationBackend, deps.log).catch((error: unknown) => {
    throw new ConfigError("KASMINA_ISOLATION_BACKEND", (error as Error).message);
  });
  const sessionConfig: IsolationSessionConfig = {
    threshold: config.isolationThreshold,
    projectionSamples: config.projectionSamples,
    backend,
    maxParameters: config.limits.maxSessionParameters,
    maxExactCopyBytes: config.limits.maxExactCopyBytes,
  };
  const healthListeners: ((healthy: boolean) => void)[] = [];
  const storeReachable = (): boolean => store.ownership?.reachable ?? true;
  const setHealthy = (healthy: boolean): void => healthListeners.forEach((listener) => listener(healthy && storeReachable()));
  // DESIGN §2.4: etcd unreachable ⇒ NOT_SERVING; reachable again ⇒ SERVING (unless prefetch is failing).
  store.ownership?.onReachable((reachable) => healthListeners.forEach((listener) => listener(reachable && prefetch?.coordinator.pollTaskIssue() === undefined)));
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
    // A reply reaches the run that asked (DESIGN §2.1), and what it changed is committed.
    handlers: {
      onReady: (ready) => replyTo(ready.requestId, (m) => m.processPrefetchReady(ready)),
      onError: (error) => replyTo(error.requestId, (m) => m.processPrefetchError(error)),
    },
    tracing: deps.tracing ?? (deps.tracer === undefined ? noopTracing : otelTracing(deps.tracer)),
    clock,
    onRejected: (rejection) => {
      const run = runs.open();
      run.manager.reportBusRejection(`${rejection.reason}${rejection.detail === undefined ? "" : `: ${rejection.detail}`}`, rejection.stream);
      void runs.commit(run, false).catch(() => undefined);
    },
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
    redisBus: (options) => new RedisBus(options),
  });
  // Which run asked for each outstanding prefetch request.
  const routes = new Map<string, string>();
  const replyTo = (requestId: string, handle: (manager: SeedManager) => void): void => {
    const runId = routes.get(requestId);
    routes.delete(requestId);
    const run = runId === undefined ? undefined : runs.find(runId);
    if (run === undefined) return;
    handle(run.manager);
    void runs.commit(run).catch(() => undefined); // a failed write is reported through onStoreFailure
  };
  const runs = new TrainingRuns({
    store,
    clock,
    defaultRunId: config.trainingRunId,
    maxRuns: config.maxTrainingRuns,
    verifier,
    onStoreFailure: deps.onStoreFailure ?? ((error) => deps.log(`state store write failed: ${error.message}`)),
    createManager: (runId) =>
      new SeedManager({
        runtime,
        clock,
        metrics: deps.metrics,
        log: deps.log,
        ...(verifier === undefined ? {} : { verifier }),
        latencyBudgetMs: config.latencyBudgetMs,
        fallbackBlueprintId: config.fallbackBlueprint,
        embargoSeconds: config.embargoSeconds,
        cacheTtlSeconds: config.cacheTtlSeconds,
        telemetryCacheMaxEntries: config.limits.telemetryCacheMaxEntries,
        gcFrequency: config.gcFrequency,
        alphaTotalSteps: config.alphaTotalSteps,
        alphaTemperature: config.alphaTemperature,
        pacing: config.lifecyclePacing,
        trainingRunId: runId,
        isolation: isolationSessionFactory(sessionConfig),
        ...(prefetch === undefined
          ? {}
          : {
              prefetch: {
                requestKernel: (seedId, blueprintId, id) => {
                  const requestId = prefetch.coordinator.requestKernel(seedId, blueprintId, id);
                  routes.set(requestId, runId);
                  return requestId;
                },
              },
            }),
      }),
  });
  await prefetch?.start();
  try {
    await runs.restore();
  } catch (error) {
    await prefetch?.close();
    await store.close();
    if (error instanceof SyntaxError) throw new ConfigError("KASMINA_STATE_PATH", `${store.description}: a stored item is not valid JSON (${error.message}); the file was not reset`);
    throw error;
  }
  const callRuns = new CallRuns(runs);
  // Operator gauges, read at scrape time: one snapshot per training run this process serves.
  registerOperatorGauges(deps.metrics, () => runs.list().map((run) => managerSnapshot(run.id, run.manager)));
  let resolveDraining: () => void = () => undefined;
  const draining = new Promise<void>((resolve) => {
    resolveDraining = resolve;
  });
  const isolationBackend = backend.name;
  const api: KasminaApi = {
    ...createKasminaApi({
      runs: callRuns,
      version: deps.version,
      isolationBackend,
      prefetchIssue: () => prefetch?.coordinator.pollTaskIssue()?.message,
      draining,
      metrics: deps.metrics,
      maxMessageBytes: config.maxMessageBytes,
      limits: config.limits,
    }),
    ...createGradientApi({ runs: callRuns, sessionConfig, backendName: isolationBackend, metrics: deps.metrics }),
    ...createSketchApi({ runs: callRuns, sessionConfig, backendName: isolationBackend, maxMessageBytes: config.maxMessageBytes, metrics: deps.metrics }),
  };
  return {
    api,
    get manager() {
      return runs.open().manager;
    },
    runs,
    store,
    isolationBackend,
    onHealthChange: (listener) => healthListeners.push(listener),
    healthy: () => prefetch?.coordinator.pollTaskIssue() === undefined && storeReachable(),
    prefetch,
    async close() {
      resolveDraining();
      await prefetch?.close();
    },
    async closeStore() {
      await store.close();
    },
  };
}
