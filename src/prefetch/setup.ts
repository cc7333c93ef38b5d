// Wires the prefetch path from configuration: KASMINA_BUS=memory ⇒ in-process bus plus the built-in
// responder (nothing else needed on the machine); redis ⇒ Redis Streams at KASMINA_REDIS_URL, where
// Oona answers; none ⇒ no coordinator (kernels come synchronously from the catalog). The Redis bus
// is infrastructure: the composition root (src/app.ts) passes its constructor in.
import type { KasminaConfig } from "../config.js";
import type { PrefetchBus } from "./bus.js";
import { PrefetchCoordinator, type PrefetchCoordinatorOptions } from "./coordinator.js";
import { MemoryBus } from "./memory-bus.js";
import { PrefetchResponder, type KernelCatalog } from "./responder.js";

export type PrefetchConfig = Pick<KasminaConfig, "bus" | "redisUrl" | "secret" | "trainingRunId">;

export interface PrefetchDependencies extends Omit<PrefetchCoordinatorOptions, "bus" | "trainingRunId"> {
  /** Answers requests on the in-process bus. */
  catalog: KernelCatalog;
  /** Failures of the built-in responder (memory bus only), for the log. */
  onResponderFailure?: (error: Error) => void;
  /** Builds the Redis Streams bus (KASMINA_BUS=redis); required for that setting. */
  redisBus?: (options: { url: string; secret: string | undefined }) => PrefetchBus;
}

export interface PrefetchStack {
  bus: PrefetchBus;
  coordinator: PrefetchCoordinator;
  /** Present with the in-process bus. */
  responder: PrefetchResponder | undefined;
  /** Starts the responder (if any), then the coordinator. */
  start(): Promise<void>;
  /** Closes the coordinator, the responder and the bus, in that order. Idempotent. */
  close(): Promise<void>;
}

export function createPrefetch(config: PrefetchConfig, deps: PrefetchDependencies): PrefetchStack | undefined {
  if (config.bus === "none") return undefined;
  const { catalog, onResponderFailure, redisBus, ...coordinatorOptions } = deps;
  if (config.bus === "redis" && redisBus === undefined) throw new Error("KASMINA_BUS=redis needs the Redis bus from the composition root");
  const bus: PrefetchBus = config.bus === "memory" || redisBus === undefined ? new MemoryBus({ secret: config.secret }) : redisBus({ url: config.redisUrl, secret: config.secret });
  const coordinator = new PrefetchCoordinator({ ...coordinatorOptions, bus, trainingRunId: config.trainingRunId });
  const responder =
    config.bus === "memory"
      ? new PrefetchResponder({
          bus,
          catalog,
          ...(deps.onRejected === undefined ? {} : { onRejected: deps.onRejected }),
          ...(onResponderFailure === undefined ? {} : { onFailure: onResponderFailure }),
        })
      : undefined;
  let closing: Promise<void> | undefined;
  return {
    bus,
    coordinator,
    responder,
    async start() {
      await responder?.start();
      coordinator.start();
    },
    close() {
      closing ??= (async () => {
        await coordinator.close();
        await responder?.close();
        await bus.close();
      })();
      return closing;
    },
  };
}
