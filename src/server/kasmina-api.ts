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
  TelemetryPacket,
  commandTypeToJSON,
  type AdaptationCommand,
} from "../leyline.js";
import { KasminaError, failedPrecondition, invalidArgument, notFound, resourceExhausted } from "../kasmina/errors.js";
import type { ParameterSpecInput } from "../kasmina/seed-manager.js";
import { RUN_ID_PATTERN } from "../kasmina/training-runs.js";
import { noopMetrics, type MetricsPort } from "../kasmina/ports.js";
import { PacketLog } from "../kasmina/telemetry.js";
import type { KasminaApi } from "./api.js";
import type { CallRuns } from "./call-run.js";
import { checkCommandBounds, checkIdLength, checkParameterCount, quote, type CommandLimits } from "./limits.js";

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
  /** KASMINA_MAX_MESSAGE_BYTES: a DrainTelemetry reply never exceeds it. */
  maxMessageBytes?: number;
  /** Client-controlled bounds (config.limits); defaults as in DESIGN §2.0. */
  limits?: Partial<ApiLimits>;
}

export interface ApiLimits extends CommandLimits {
  maxWatchers: number;
  maxRegisteredParameters: number;
}

const DEFAULT_LIMITS: ApiLimits = { maxAnnotations: 64, maxAnnotationBytes: 16 * 1024, maxWatchers: 64, maxRegisteredParameters: 65_536 };

/** Room for DrainTelemetryResponse's dropped_packets and remaining_packets (tag + 10-byte varint each). */
const DRAIN_REPLY_OVERHEAD = 22;

const varintLength = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

/** Bytes a packet adds to a DrainTelemetryResponse (field 1: tag, length, body); packets never change once logged. */
const packetSizes = new WeakMap<TelemetryPacket, number>();
function packetWireSize(packet: TelemetryPacket): number {
  let size = packetSizes.get(packet);
  if (size === undefined) {
    const body = TelemetryPacket.encode(packet).finish().length;
    size = 1 + varintLength(body) + body;
    packetSizes.set(packet, size);
  }
  return size;
}

/** Enum numbers the contract defines; anything else is INVALID_ARGUMENT (DESIGN §2). */
const isDefined = (value: number, max: number): boolean => Number.isInteger(value) && value >= 0 && value <= max;

function requireId(value: string, field: string): string {
  checkIdLength(value, field);
  if (value.trim() === "") throw invalidArgument(`${field} must not be empty`);
  return value;
}

/** Structural checks of an AdaptationCommand (DESIGN §2 status codes, decision 20), bounds first (§2.0). */
export function validateCommand(request: ApplyCommandRequest, limits?: CommandLimits): AdaptationCommand {
  const command = request.command;
  if (command === undefined) throw invalidArgument("command is required");
  checkCommandBounds(command, limits);
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
  for (const [key, value] of payload?.$case === "seedOperation" ? payload.value.parameters : new Map<string, number>()) {
    if (!Number.isFinite(value) && !Number.isNaN(value)) throw invalidArgument(`seed_operation.parameters[${quote(key)}] is not finite`);
  }
  return command;
}

function parameterSpecs(specs: readonly ParameterSpec[], field: string, needBytes: boolean): ParameterSpecInput[] {
  const seen = new Set<string>();
  return specs.map((spec, i) => {
    requireId(spec.key, `${field}[${i}].key`);
    if (seen.has(spec.key)) throw invalidArgument(`${field}[${i}].key ${quote(spec.key)} appears twice`);
    seen.add(spec.key);
    if (needBytes && spec.elementBytes === 0) throw invalidArgument(`${field}[${i}].element_bytes must be > 0 (${quote(spec.key)})`);
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
  const limits: ApiLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const maxMessageBytes = options.maxMessageBytes ?? 16 * 1024 * 1024;
  let watchers = 0;
  const watchLimit = options.watchQueueLimit ?? 1024;
  const watchDropped = (options.metrics ?? noopMetrics).counter(
    "kasmina.telemetry.watch_dropped",
    "Packets a slow WatchTelemetry client fell too far behind to receive",
  );
  return {
    applyCommand(request, context): Promise<ApplyCommandResponse> {
      const command = validateCommand(request, limits);
      return runs.within(context, ({ manager }) => {
        const outcome = manager.handleCommand(command);
        if (!outcome.accepted) {
          if (outcome.reason === "verifier_unavailable") {
            throw failedPrecondition("verifier_unavailable: no signing secret is configured (set ESPER_LEYLINE_SECRET); every command is refused");
          }
          if (outcome.reason === "training_run_mismatch") {
            throw new KasminaError("permission_denied", `training_run_mismatch: command ${quote(command.commandId)} is signed for training run ${quote(command.annotations.get("training_run_id") ?? "")}, not ${quote(manager.runId)} (metadata kasmina-training-run)`);
          }
          throw new KasminaError("permission_denied", `${outcome.reason}: command ${quote(command.commandId)} was rejected by verification`);
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
        if (result === undefined) throw notFound(`seed ${quote(seedId)} is not managed`);
        return result;
      });
    },

    exportSeedStates(_request, context) {
      return runs.within(context, ({ manager }) => ({ seeds: manager.exportSeedStates(), currentEpoch: manager.currentEpoch }), false);
    },

    registerHost(request, context) {
      checkParameterCount(request.parameters.length, "RegisterHost parameters", limits.maxRegisteredParameters);
      const specs = parameterSpecs(request.parameters, "parameters", false);
      if (specs.length === 0) throw invalidArgument("parameters must list at least one host parameter");
      return runs.within(context, ({ manager }) => ({ parameterCount: manager.registerHost(specs) }));
    },

    registerTeacher(request, context) {
      checkParameterCount(request.parameters.length, "RegisterTeacher parameters", limits.maxRegisteredParameters);
      checkParameterCount(request.buffers.length, "RegisterTeacher buffers", limits.maxRegisteredParameters);
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
        if (payload === undefined) throw notFound(`no rollback record for seed ${quote(seedId)}`);
        return { payload };
      }, false);
    },

    drainTelemetry(request, context) {
      return runs.within(context, ({ manager }) => {
        // DESIGN §2.0: whole packets, oldest first, under max_packets and the message limit; a
        // packet is removed only once it is in the reply, so a drain never loses one. The sizes are
        // exact (each packet's encoded length), so the reply cannot fail to serialize for size.
        const log = manager.packets;
        const budget = maxMessageBytes - DRAIN_REPLY_OVERHEAD;
        let taken = log.peekWithin(request.maxPackets, budget, packetWireSize);
        // A packet larger than the whole limit could never be sent: it is dropped and counted
        // (dropped_packets), not left to block the log forever.
        while (taken.blocked) {
          log.dropOldest();
          taken = log.peekWithin(request.maxPackets, budget, packetWireSize);
        }
        const { packets } = taken;
        log.discard(packets.length);
        return { packets, droppedPackets: BigInt(log.dropped), remainingPackets: BigInt(log.size) };
      });
    },

    async listTrainingRuns() {
      // Lists without selecting (so without creating) a run; waits for writes in flight first.
      await runs.runs.store.settled();
      // Sorted by id: the same order before and after a restart.
      const list = runs.runs.list().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const summary = (run: (typeof list)[number]): TrainingRunSummary => ({
        trainingRunId: run.id,
        seeds: run.manager.seedIds().length,
        currentEpoch: run.manager.currentEpoch,
        lastActivityUnixMs: BigInt(Math.round(run.lastActivityMs)),
        isolationBreaker: run.manager.isolationBreaker.snapshot().state,
        violations: run.manager.globalViolationCount,
      });
      return { runs: list.map(summary) };
    },

    async closeTrainingRun(request) {
      const id = request.trainingRunId;
      if (!RUN_ID_PATTERN.test(id)) throw invalidArgument(`training_run_id must be 1-128 characters of [A-Za-z0-9._:-], got ${quote(id)}`);
      return { seedsRetired: await runs.runs.close(id) };
    },

    async watchTelemetry(_request, write, context) {
      if (watchers >= limits.maxWatchers) {
        throw resourceExhausted(`${watchers} WatchTelemetry streams are open, the limit is ${limits.maxWatchers} (KASMINA_MAX_WATCHERS)`);
      }
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
      watchers += 1;
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
        watchers -= 1;
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
