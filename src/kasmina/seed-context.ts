// Per-seed state (spec §2.2) and its bounded event queue.
import { MessagePriority, SeedLifecycleStage, type SeedLifecycleGate, type TelemetryEvent } from "../leyline.js";
import type { GateResult } from "./gates.js";
import type { Kernel } from "./kernel-runtime.js";
import { SeedQueue } from "./seed-queue.js";
import { warning } from "./telemetry.js";

export const SEED_QUEUE_DROPPED = "seed_queue_dropped";

export function makeEventQueue(seedId: string, onDropped: (n: number) => void, capacity?: number): SeedQueue<TelemetryEvent> {
  return new SeedQueue<TelemetryEvent>({
    ...(capacity === undefined ? {} : { capacity }),
    makeMarker: (dropped) => warning(SEED_QUEUE_DROPPED, { seed_id: seedId, dropped: String(dropped) }),
    markerCount: (e) => (e.description === SEED_QUEUE_DROPPED ? Number(e.attributes.get("dropped") ?? 0) : undefined),
    onDropped,
  });
}

export class SeedContext {
  stage: SeedLifecycleStage = SeedLifecycleStage.SEED_STAGE_DORMANT;
  readonly metadata = new Map<string, string>();
  readonly lastGateResults = new Map<SeedLifecycleGate, GateResult>();
  lastKernelLatencyMs = 0;
  usedFallback = false;
  kernelAttached = false;
  /** Monotonic deadline before which a germinate is refused (DESIGN decision 10). */
  embargoUntil: number | null = null;
  isolationViolations = 0;
  kernel: Kernel | undefined;
  alpha = 0;
  alphaSteps = 0;
  pendingPriority: MessagePriority = MessagePriority.MESSAGE_PRIORITY_NORMAL;
  lastStepEmitted: bigint | undefined;

  constructor(
    readonly seedId: string,
    readonly queue: SeedQueue<TelemetryEvent>,
  ) {}
}
