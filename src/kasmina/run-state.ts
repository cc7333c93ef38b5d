// One training run's changing state as one object (DESIGN §2.1): what the manager's parts read and
// write, and what run-state-codec.ts turns into the plain items the state store persists.
import { MessagePriority, type TelemetryEvent } from "../leyline.js";
import type { SeedContext } from "./seed-context.js";
import type { SeedQueue } from "./seed-queue.js";
import type { IsolationSessionHandle, PendingPrefetch } from "./run-types.js";

export interface RunState {
  readonly seeds: Map<string, SeedContext>;
  readonly ephemeral: Set<string>;
  /** Not durable (DESIGN §2.2): re-opened at zero for attached seeds after a restart. */
  readonly sessions: Map<string, IsolationSessionHandle>;
  readonly rollbacks: Map<string, Record<string, string>>;
  /** Outstanding prefetch requests by request id. */
  readonly pendingPrefetch: Map<string, PendingPrefetch>;
  readonly globalQueue: SeedQueue<TelemetryEvent>;
  globalPriority: MessagePriority;
  hostParameters: Set<string>;
  packetCounter: number;
  lastPriorityValue: MessagePriority;
  globalViolations: number;
  lastFetchLatencyMs: number;
  lastFallbackUsed: boolean;
  lastRollbackLatencyMs: number;
  epoch: number;
}

export function newRunState(globalQueue: SeedQueue<TelemetryEvent>): RunState {
  return {
    seeds: new Map(),
    ephemeral: new Set(),
    sessions: new Map(),
    rollbacks: new Map(),
    pendingPrefetch: new Map(),
    globalQueue,
    globalPriority: MessagePriority.MESSAGE_PRIORITY_NORMAL,
    hostParameters: new Set(),
    packetCounter: 0,
    lastPriorityValue: MessagePriority.MESSAGE_PRIORITY_NORMAL,
    globalViolations: 0,
    lastFetchLatencyMs: 0,
    lastFallbackUsed: false,
    lastRollbackLatencyMs: 0,
    epoch: 0,
  };
}
