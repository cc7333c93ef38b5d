// KasminaService handlers: validate every request, call the seed manager, shape the response.
// Validation happens before any state is touched, so a rejected request changes nothing.
import type {
  ApplyCommandRequest,
  ApplyCommandResponse,
  CacheStats,
  GetStatusResponse,
  ParameterSpec,
  TrainingRunSummary,
  WatchTelemetryResponse,
} from "../../generated/esper/kasmina/v1/kasmina.js";
import {
  CircuitBreakerState,
  CommandType,
  SeedOperation,
  commandTypeToJSON,
  type AdaptationCommand,
} from "../leyline.js";
import { KasminaError, failedPrecondition, invalidArgument, notFound } from "../kasmina/errors.js";
import type { ParameterSpecInput } from "../kasmina/seed-manager.js";
import { RUN_ID_PATTERN } from "../kasmina/training-runs.js";
import { noopMetrics, type MetricsPort } from "../kasmina/ports.js";
import { PacketLog } from "../kasmina/telemetry.js";
import type { KasminaApi } from "./api.js";
import type { CallRuns } from "./call-run.js";

export interface ApiOptions {
  /** The training runs; each call works on the one its metadata selects (DESIGN §2.1). */
  runs: CallRuns;
  version: string;
  isolationBackend: string;
  /** The prefetch coordinator's current failure, if any (KAS-H1-006). */
  prefetchIssue: () => string | undefined;
  /** Packets a slow watcher may fall behind by before the oldest are dropped. */
  watchQueueLimit?: number;
  /** Resolves when the server starts draining, so watch streams end cleanly. */
  draining?: Promise<void>;
  metrics?: MetricsPort;
}

const MAX_ID_LENGTH = 512;

/** Enum numbers the contract defines; anything else is INVALID_ARGUMENT (DESIGN §2). */
const isDefined = (value: number, max: number): boolean => Number.isInteger(value) && value >= 0 && value <= max;

function requireId(value: string, field: string): string {
  if (value.trim() === "") throw invalidArgument(`${field} must not be empty`);
  if (value.length > MAX_ID_LENGTH) throw invalidArgument(`${field} is longer than ${MAX_ID_LENGTH} characters`);
  return value;
}

/** Structural checks of an AdaptationCommand (DESIGN §2 status codes, decision 20). */
export function validateCommand(request: ApplyCommandRequest): AdaptationCommand {
  const command = request.command;
  if (command === undefined) throw invalidArgument("command is required");
  if (!isDefined(command.commandType, CommandType.COMMAND_STRUCTURAL_PRUNING)) {
    throw invalidArgument(`command_type ${command.commandType} is not a defined CommandType`);
  }
  const payload = command.payload;
  const type = commandTypeToJSON(command.commandType);
  if (command.commandType === CommandType.COMMAND_SEED) {
    if (payload?.$case !== "seedOperation") throw invalidArgument(`${type} needs the seed_operation payload`);
    if (!isDefined(payload.value.operation, SeedOperation.SEED_OP_CANCEL)) {
      throw invalidArgument(`seed_operation.operation ${payload.value.operation} is not a defined SeedOperation`);
    }
  }
  if (command.commandType === CommandType.COMMAND_CIRCUIT_BREAKER) {
    if (payload?.$case !== "circuitBreaker") throw invalidArgument(`${type} needs the circuit_breaker payload`);
    if (!isDefined(payload.value.desiredState, CircuitBreakerState.CIRCUIT_STATE_HALF_OPEN)) {
      throw invalidArgument(`circuit_breaker.desired_state ${payload.value.desiredState} is not a defined CircuitBreakerState`);
    }
  }
  if (command.commandType === CommandType.COMMAND_SEED || command.commandType === CommandType.COMMAND_PAUSE) {
    requireId(command.targetSeedId, `target_seed_id (needed by ${type})`);
  }
  for (const [key, value] of Object.entries(payload?.$case === "seedOperation" ? payload.value.parameters : {})) {
    if (!Number.isFinite(value) && !Number.isNaN(value)) throw invalidArgument(`seed_operation.parameters[${key}] is not finite`);
  }
  return command;
}

function parameterSpecs(specs: readonly ParameterSpec[], field: string, needBytes: boolean): ParameterSpecInput[] {
  const seen = new Set<string>();
  return specs.map((spec, i) => {
    requireId(spec.key, `${field}[${i}].key`);
    if (seen.has(spec.key)) throw invalidArgument(`${field}[${i}].key ${JSON.stringify(spec.key)} appears twice`);
    seen.add(spec.key);
    if (needBytes && spec.elementBytes === 0) throw invalidArgument(`${field}[${i}].element_bytes must be > 0 (${spec.key})`);
    return { key: spec.key, shape: spec.shape, trainable: spec.trainable, elementBytes: spec.elementBytes };
  });
}

const cacheStats = (s: { size: number; hitRate: number; evictions: number }, capacity = 0): CacheStats => ({
  size: BigInt(s.size),
  hitRate: s.hitRate,
  evictions: BigInt(s.evictions),
  capacity: BigInt(capacity),
});

export function createKasminaApi(options: ApiOptions): Pick<
  KasminaApi,
  | "applyCommand"
  | "finalizeStep"
  | "updateEpoch"
  | "advanceAlpha"
  | "exportSeedStates"
  | "registerHost"
  | "registerTeacher"
  | "recordIsolationViolation"
  | "getRollbackPayload"
  | "drainTelemetry"
  | "watchTelemetry"
  | "getStatus"
  | "listTrainingRuns"
  | "closeTrainingRun"
> {
  const { runs } = options;
  const watchLimit = options.watchQueueLimit ?? 1024;
  const watchDropped = (options.metrics ?? noopMetrics).counter(
    "kasmina.telemetry.watch_dropped",
    "Packets a slow WatchTelemetry client fell too far behind to receive",
  );
  return {
    applyCommand(request, context): Promise<ApplyCommandResponse> {
      const command = validateCommand(request);
      return runs.within(context, ({ manager }) => {
      const outcome = manager.handleCommand(command);
      if (!outcome.accepted) {
        if (outcome.reason === "verifier_unavailable") {
          throw failedPrecondition("verifier_unavailable: no signing secret is configured (set ESPER_LEYLINE_SECRET); every command is refused");
        }
        if (outcome.reason === "training_run_mismatch") {
          throw new KasminaError("permission_denied", `training_run_mismatch: command ${JSON.stringify(command.commandId)} is signed for training run ${JSON.stringify(command.annotations.get("training_run_id")?.slice(0, 128))}, not ${JSON.stringify(manager.runId)} (metadata ${"kasmina-training-run"})`);
        }
        throw new KasminaError("permission_denied", `${outcome.reason}: command ${JSON.stringify(command.commandId)} was rejected by verification`);
      }
      const seed = outcome.seedId === undefined ? undefined : manager.seedState(outcome.seedId);
      return { events: outcome.events, seed };
      });
    },

    finalizeStep(request, context) {
      return runs.within(context, ({ manager }) => ({ packetsEmitted: manager.finalizeStep(request.stepIndex) }));
    },

    updateEpoch(request, context) {
      return runs.within(context, ({ manager }) => {
      if (request.epoch < manager.currentEpoch) {
        throw failedPrecondition(`epoch ${request.epoch} is before the current epoch ${manager.currentEpoch}; epochs only move forward`);
      }
      const gc = manager.updateEpoch(request.epoch);
      return {
        gc: {
          ran: gc.ran,
          skippedReason: gc.skippedReason,
          kernelCacheExpired: BigInt(gc.kernelCacheExpired),
          telemetryCacheExpired: BigInt(gc.telemetryCacheExpired),
          gcCounter: BigInt(gc.gcCounter),
          gcEpoch: gc.gcEpoch,
        },
      };
      });
    },

    advanceAlpha(request, context) {
      const seedId = requireId(request.seedId, "seed_id");
      return runs.within(context, ({ manager }) => {
      // proto3 cannot tell an absent `steps` from 0: 0 means the spec's default of one step.
      const result = manager.advanceAlpha(seedId, request.steps === 0 ? 1 : request.steps);
      if (result === undefined) throw notFound(`seed ${JSON.stringify(seedId)} is not managed`);
      return result;
      });
    },

    exportSeedStates(_request, context) {
      return runs.within(context, ({ manager }) => ({ seeds: manager.exportSeedStates(), currentEpoch: manager.currentEpoch }), false);
    },

    registerHost(request, context) {
      const specs = parameterSpecs(request.parameters, "parameters", false);
      if (specs.length === 0) throw invalidArgument("parameters must list at least one host parameter");
      return runs.within(context, ({ manager }) => ({ parameterCount: manager.registerHost(specs) }));
    },

    registerTeacher(request, context) {
      const parameters = parameterSpecs(request.parameters, "parameters", true);
      const buffers = parameterSpecs(request.buffers, "buffers", true);
      if (parameters.length === 0) throw invalidArgument("parameters must list at least one teacher parameter");
      return runs.within(context, ({ manager }) => manager.registerTeacher(parameters, buffers));
    },

    recordIsolationViolation(request, context) {
      const seedId = requireId(request.seedId, "seed_id");
      return runs.within(context, ({ manager }) => {
      const result = manager.recordIsolationViolation(seedId);
      return { totalViolations: result.totalViolations, isolationBreaker: result.breakerState };
      });
    },

    getRollbackPayload(request, context) {
      const seedId = requireId(request.seedId, "seed_id");
      return runs.within(context, ({ manager }) => {
      const payload = manager.rollbackPayload(seedId);
      if (payload === undefined) throw notFound(`no rollback record for seed ${JSON.stringify(seedId)}`);
      return { payload };
      }, false);
    },

    drainTelemetry(request, context) {
      return runs.within(context, ({ manager }) => {
      const packets = manager.packets.drain(request.maxPackets);
      return { packets, droppedPackets: BigInt(manager.packets.dropped), remainingPackets: BigInt(manager.packets.size) };
      });
    },

    async listTrainingRuns() {
      // Lists without selecting (so without creating) a run; waits for writes in flight first.
      await runs.runs.store.settled();
      return ({ runs: runs.runs.list().map((run): TrainingRunSummary => ({
        trainingRunId: run.id,
        seeds: run.manager.seedIds().length,
        currentEpoch: run.manager.currentEpoch,
        lastActivityUnixMs: BigInt(Math.round(run.lastActivityMs)),
        isolationBreaker: run.manager.isolationBreaker.snapshot().state,
        violations: run.manager.globalViolationCount,
      })) });
    },

    async closeTrainingRun(request) {
      const id = request.trainingRunId;
      if (!RUN_ID_PATTERN.test(id)) throw invalidArgument(`training_run_id must be 1-128 characters of [A-Za-z0-9._:-], got ${JSON.stringify(id.slice(0, 128))}`);
      return { seedsRetired: await runs.runs.close(id) };
    },

    async watchTelemetry(_request, write, context) {
      // Synchronous unless a replica must take the run over first: a watcher subscribes in its call's turn.
      const taken = runs.forCall(context);
      const run = taken instanceof Promise ? await taken : taken;
      const { manager } = run;
      // Each watcher has its own bounded ring (the same PacketLog the service drains): a slow
      // watcher loses its oldest packets, counted, instead of making the server buffer without bound.
      const queue = new PacketLog(watchLimit);
      let wake: (() => void) | undefined;
      const unsubscribe = manager.packets.subscribe((packet) => {
        const dropped = queue.dropped;
        queue.append(packet);
        if (queue.dropped > dropped) watchDropped.add(1);
        wake?.();
      });
      let stopped = false;
      const stop = (): void => {
        stopped = true;
        wake?.();
      };
      // CloseTrainingRun ends the run's watchers (DESIGN §2.1) after its last packets (the retirements).
      let closing = false;
      const finish = (): void => {
        closing = true;
        wake?.();
      };
      context.signal.addEventListener("abort", stop, { once: true });
      run.closed.addEventListener("abort", finish, { once: true });
      void options.draining?.then(stop);
      try {
        while (!stopped) {
          const [packet] = queue.drain(1);
          if (packet === undefined) {
            if (closing) break;
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
            continue;
          }
          const response: WatchTelemetryResponse = { packet };
          await write(response);
        }
      } finally {
        unsubscribe();
        context.signal.removeEventListener("abort", stop);
        run.closed.removeEventListener("abort", finish);
      }
      // A replica that stopped serving the run ends its watchers UNAVAILABLE (DESIGN §2.4).
      if (closing && run.closed.reason instanceof KasminaError) throw run.closed.reason;
    },

    getStatus(_request, context): Promise<GetStatusResponse> {
      return runs.within(context, ({ manager, id }) => {
      const kernel = manager.kernelBreaker.snapshot();
      const iso = manager.isolationBreaker.snapshot();
      const gpu = manager.gpuCacheStats();
      return {
        isolationBackend: options.isolationBackend,
        seeds: manager.seedIds().length,
        currentEpoch: manager.currentEpoch,
        kernelBreaker: kernel.state,
        isolationBreaker: iso.state,
        prefetchIssue: options.prefetchIssue() ?? "",
        version: options.version,
        kernelCache: cacheStats(manager.memory.kernelCache.stats()),
        telemetryCache: cacheStats(manager.memory.telemetryCache.stats()),
        gpuCache: gpu === undefined ? undefined : cacheStats(gpu, gpu.capacity),
        trainingRuns: runs.runs.size,
        trainingRun: id,
        stateStore: runs.runs.store.description,
      };
      }, false);
    },
  };
}
