// Kernel prefetch coordinator (spec §14, KAS-H1-006, DESIGN decisions 8 and 23): publishes
// KernelPrefetchRequest envelopes, reads the ready and error reply streams in two supervised loops,
// and hands each reply exactly once to the manager's handlers.
import { randomUUID } from "node:crypto";
import { BusMessageType, KernelArtifactError, KernelArtifactReady, KernelPrefetchRequest, type BusEnvelope } from "../leyline.js";
import { noopTracing, systemClock, type Clock, type SpanHandle, type TracingPort } from "../kasmina/ports.js";
import {
  CONSUMER_BLOCK_MS,
  PREFETCH_STREAMS,
  errorMessage,
  toError,
  type BusConsumer,
  type BusMessage,
  type PrefetchBus,
  type RejectReason,
  type RejectionListener,
} from "./bus.js";
import { ConsumerLoop, DEFAULT_LOOP_BACKOFF, type LoopBackoff } from "./consumer-loop.js";

export const PREFETCH_REQUEST_SPAN = "kasmina.prefetch.request";
export const PREFETCH_LOOP_SPAN = "kasmina.prefetch.consumer_loop";
export const PREFETCH_TIMEOUT_REASON = "prefetch timed out";

/** What the coordinator knows about the request a reply answers. */
export interface PrefetchRequestInfo {
  requestId: string;
  seedId: string;
  blueprintId: string;
  trainingRunId: string;
}

export interface PrefetchHandlers {
  /** A ready reply for a pending request whose blueprint id matches. */
  onReady(ready: KernelArtifactReady, request: PrefetchRequestInfo): void | Promise<void>;
  /** An error reply, a mismatched ready reply, a timeout or a failed publish. */
  onError(error: KernelArtifactError, request: PrefetchRequestInfo): void | Promise<void>;
}

export type IgnoredReplyReason = "duplicate" | "unknown_request";

export interface PrefetchCoordinatorOptions {
  bus: PrefetchBus;
  handlers: PrefetchHandlers;
  /** Used when requestKernel gets no training run id (KASMINA_TRAINING_RUN_ID). */
  trainingRunId?: string | undefined;
  tracing?: TracingPort;
  clock?: Clock;
  /** A request without a reply after this long fails with "prefetch timed out" (default 60 s). */
  requestTimeoutMs?: number;
  /** How often overdue requests are swept (default min(1 s, timeout / 4)); 0 disables the timer. */
  timeoutSweepMs?: number;
  /** Consumer group on the reply streams (default "kasmina"); one group per Kasmina instance. */
  group?: string;
  /** Consumer name inside the group (default kasmina-<pid>-<random>). */
  consumerName?: string;
  /** Replies a crashed consumer left unacknowledged are reclaimed after this idle time (default 30 s). */
  claimMinIdleMs?: number;
  blockMs?: number;
  backoff?: LoopBackoff;
  /** Handled request ids remembered to recognise redelivered replies (default 10000). */
  rememberedReplies?: number;
  /** An entry acknowledged and dropped (bad signature, unreadable): emit `prefetch_message_rejected`. */
  onRejected?: RejectionListener;
  /** A reply acknowledged and ignored because its request is already settled or not ours. */
  onReplyIgnored?: (reply: { stream: string; requestId: string; reason: IgnoredReplyReason }) => void;
  /** A consumer loop failed or exited: health should turn NOT_SERVING. Called for every failure. */
  onIssue?: (issue: Error) => void;
  /** All loops healthy again after an issue: health may return to SERVING. */
  onRecovered?: () => void;
}

/** Thrown by requestKernel when no training run id is known (decision 8: the caller fails loudly). */
export class MissingTrainingRunIdError extends Error {
  readonly dependencyType = "training_run_id";
  constructor(
    readonly seedId: string,
    readonly blueprintId: string,
  ) {
    super(`prefetch request missing training_run_id (seed_id=${seedId}, blueprint_id=${blueprintId})`);
    this.name = "MissingTrainingRunIdError";
  }
}

interface PendingRequest extends PrefetchRequestInfo {
  span: SpanHandle;
  deadline: number;
  /** A handler for this request is running; the sweep and other replies keep off. */
  settling: boolean;
}

/** What one loop last reported. */
class LoopHealth {
  /** The failure of the last round, cleared by the next successful round. */
  failure: Error | undefined;
  /** Set once when the loop ended while the coordinator should run. */
  exit: Error | undefined;
}

interface LoopState {
  loop: ConsumerLoop;
  health: LoopHealth;
}

type State = "idle" | "running" | "closing";

/** Remembers the newest `capacity` ids (insertion order); old ids fall out. */
class BoundedIdSet {
  private readonly ids = new Set<string>();
  constructor(private readonly capacity: number) {}
  add(id: string): void {
    this.ids.delete(id);
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next();
      if (oldest.done !== true) this.ids.delete(oldest.value);
    }
  }
  has(id: string): boolean {
    return this.ids.has(id);
  }
}

export class PrefetchCoordinator {
  private state: State = "idle";
  private loops: LoopState[] = [];
  private closing: Promise<void> | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private reportedIssue = false;
  private readonly pending = new Map<string, PendingRequest>();
  private readonly settled: BoundedIdSet;
  private readonly publishes = new Set<Promise<void>>();
  private readonly tracing: TracingPort;
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  private readonly group: string;
  private readonly consumerName: string;

  constructor(private readonly options: PrefetchCoordinatorOptions) {
    this.tracing = options.tracing ?? noopTracing;
    this.clock = options.clock ?? systemClock;
    this.timeoutMs = options.requestTimeoutMs ?? 60_000;
    this.group = options.group ?? "kasmina";
    this.consumerName = options.consumerName ?? `kasmina-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.settled = new BoundedIdSet(options.rememberedReplies ?? 10_000);
  }

  get running(): boolean {
    return this.state === "running";
  }

  /** Requests awaiting a reply. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Idempotent. Starts the ready and error loops (and the timeout sweep). */
  start(): void {
    if (this.state === "running") return;
    if (this.state === "closing") throw new Error("prefetch coordinator is closing; await close() before starting again");
    const { bus } = this.options;
    const consumer = (stream: string) =>
      bus.consumer({
        stream,
        group: this.group,
        consumer: this.consumerName,
        ...(this.options.claimMinIdleMs === undefined ? {} : { claimMinIdleMs: this.options.claimMinIdleMs }),
        ...(this.options.onRejected === undefined ? {} : { onRejected: this.options.onRejected }),
      });
    this.loops = [
      this.makeLoop("ready", consumer(PREFETCH_STREAMS.ready), (message) => this.handleReady(message)),
      this.makeLoop("error", consumer(PREFETCH_STREAMS.errors), (message) => this.handleError(message)),
    ];
    // Running only once both consumers exist (a closed bus throws above and leaves the coordinator idle).
    this.state = "running";
    this.reportedIssue = false;
    for (const state of this.loops) state.loop.start();
    const sweepMs = this.options.timeoutSweepMs ?? Math.max(10, Math.min(1000, this.timeoutMs / 4));
    if (sweepMs > 0) {
      this.sweepTimer = setInterval(() => void this.expireOverdue(), sweepMs);
      this.sweepTimer.unref();
    }
  }

  /**
   * Idempotent. Stops both loops (a blocked read is cut short, a running handler finishes and is
   * acknowledged) and abandons requests still pending: their spans end with ERROR, the handlers are
   * not called (the service is going away).
   */
  close(): Promise<void> {
    if (this.state === "idle") return this.closing ?? Promise.resolve();
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.state = "closing";
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    await Promise.all(this.loops.map((state) => state.loop.stop()));
    await Promise.all([...this.publishes]);
    for (const request of this.pending.values()) request.span.end({ error: "prefetch coordinator closed" });
    this.pending.clear();
    this.loops = [];
    this.state = "idle";
    this.closing = undefined;
  }

  /**
   * KAS-H1-006. A loop failure (its latest round failed: the exception itself) or a loop that ended
   * while the coordinator should run ("... exited unexpectedly"). During and after a deliberate
   * close() nothing is reported: a supervisor polling then must not page for a clean shutdown.
   */
  pollTaskIssue(): Error | undefined {
    if (this.state !== "running") return undefined;
    for (const { health } of this.loops) {
      if (health.failure !== undefined) return health.failure;
      if (health.exit !== undefined) return health.exit;
    }
    return undefined;
  }

  /**
   * Publishes a KernelPrefetchRequest and returns its id (`prefetch-<uuid>`) at once; the outcome
   * arrives through the handlers. Throws MissingTrainingRunIdError without a training run id.
   */
  requestKernel(seedId: string, blueprintId: string, trainingRunId?: string): string {
    const runId = trainingRunId?.trim() || this.options.trainingRunId?.trim() || "";
    if (runId === "") throw new MissingTrainingRunIdError(seedId, blueprintId);
    if (this.state !== "running") throw new Error("prefetch coordinator is not running");
    const requestId = `prefetch-${randomUUID()}`;
    const wallMs = this.clock.wallMs();
    const request: KernelPrefetchRequest = {
      requestId,
      blueprintId,
      trainingRunId: runId,
      issuedAt: { seconds: BigInt(Math.floor(wallMs / 1000)), nanos: Math.floor(wallMs % 1000) * 1_000_000 },
    };
    const envelope: BusEnvelope = {
      messageType: BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_REQUEST,
      payload: Buffer.from(KernelPrefetchRequest.encode(request).finish()),
      attributes: new Map(),
    };
    const span = this.tracing.startSpan(PREFETCH_REQUEST_SPAN, {
      request_id: requestId,
      seed_id: seedId,
      blueprint_id: blueprintId,
      training_run_id: runId,
    });
    this.pending.set(requestId, {
      requestId,
      seedId,
      blueprintId,
      trainingRunId: runId,
      span,
      deadline: this.clock.monotonic() + this.timeoutMs / 1000,
      settling: false,
    });
    const publishing = this.publish(requestId, envelope).finally(() => this.publishes.delete(publishing));
    this.publishes.add(publishing);
    return requestId;
  }

  /**
   * Fails every request past its deadline with "prefetch timed out" (the timer calls this; a
   * manager driving a fake clock may call it directly). Resolves to the number expired.
   */
  async expireOverdue(): Promise<number> {
    const now = this.clock.monotonic();
    const overdue = [...this.pending.values()].filter((request) => !request.settling && now >= request.deadline);
    for (const request of overdue) await this.failRequest(request, PREFETCH_TIMEOUT_REASON);
    return overdue.length;
  }

  private async publish(requestId: string, envelope: BusEnvelope): Promise<void> {
    const { bus } = this.options;
    try {
      // The reply groups must exist before the request is out, or a fast reply (or one sent after
      // Redis lost its data) would land before the group and never be read.
      await bus.ensureGroup(PREFETCH_STREAMS.ready, this.group);
      await bus.ensureGroup(PREFETCH_STREAMS.errors, this.group);
      await bus.publish(PREFETCH_STREAMS.requests, envelope);
    } catch (error) {
      const request = this.pending.get(requestId);
      if (request !== undefined && !request.settling) await this.failRequest(request, `prefetch publish failed: ${errorMessage(error)}`);
    }
  }

  /** Settles a request as failed without a reply (timeout, publish failure): final even if the handler throws. */
  private async failRequest(request: PendingRequest, reason: string): Promise<void> {
    request.settling = true;
    this.pending.delete(request.requestId);
    this.settled.add(request.requestId);
    try {
      await this.options.handlers.onError({ requestId: request.requestId, blueprintId: request.blueprintId, reason }, this.info(request));
    } catch (error) {
      // Outside a consumer loop there is nothing to retry; keep the evidence on the request's span.
      request.span.recordException(toError(error));
    }
    request.span.end({ error: reason });
  }

  private handleReady(message: BusMessage): Promise<void> {
    const ready = this.decode(message, BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_READY, KernelArtifactReady);
    if (ready === undefined) return Promise.resolve();
    const request = this.claim(message.stream, ready.requestId);
    if (request === undefined) return Promise.resolve();
    if (ready.blueprintId !== request.blueprintId) {
      // Decision 23: a kernel for another blueprint must not be attached.
      const reason = `prefetch blueprint mismatch: requested ${request.blueprintId}, ready reply carries ${ready.blueprintId}`;
      return this.settle(request, reason, () =>
        this.options.handlers.onError({ requestId: request.requestId, blueprintId: request.blueprintId, reason }, this.info(request)),
      );
    }
    return this.settle(request, undefined, () => this.options.handlers.onReady(ready, this.info(request)));
  }

  private handleError(message: BusMessage): Promise<void> {
    const error = this.decode(message, BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_ERROR, KernelArtifactError);
    if (error === undefined) return Promise.resolve();
    const request = this.claim(message.stream, error.requestId);
    if (request === undefined) return Promise.resolve();
    return this.settle(request, error.reason, () => this.options.handlers.onError(error, this.info(request)));
  }

  /** The pending request a reply answers, or undefined (reported) when it is settled or not ours. */
  private claim(stream: string, requestId: string): PendingRequest | undefined {
    const request = this.pending.get(requestId);
    if (request !== undefined && !request.settling) return request;
    const reason: IgnoredReplyReason = request !== undefined || this.settled.has(requestId) ? "duplicate" : "unknown_request";
    this.options.onReplyIgnored?.({ stream, requestId, reason });
    return undefined;
  }

  /**
   * Runs the manager's handler; only when it returns is the request settled and its span ended. If
   * it throws, the request stays pending and the error fails the round, so the entry stays
   * unacknowledged and is delivered again.
   */
  private async settle(request: PendingRequest, error: string | undefined, invoke: () => void | Promise<void>): Promise<void> {
    request.settling = true;
    try {
      await invoke();
    } catch (failure) {
      request.settling = false;
      throw failure;
    }
    this.pending.delete(request.requestId);
    this.settled.add(request.requestId);
    request.span.end(error === undefined ? undefined : { error });
  }

  private decode<T>(message: BusMessage, expected: BusMessageType, codec: { decode(input: Uint8Array): T }): T | undefined {
    const reject = (reason: RejectReason, detail: string): undefined => {
      this.options.onRejected?.({ stream: message.stream, entryId: message.entryId, reason, detail });
      return undefined;
    };
    if (message.envelope.messageType !== expected) {
      return reject("unexpected_message_type", `message type ${message.envelope.messageType} on ${message.stream}`);
    }
    try {
      return codec.decode(message.envelope.payload);
    } catch (error) {
      return reject("malformed_message", errorMessage(error));
    }
  }

  private info(request: PendingRequest): PrefetchRequestInfo {
    return { requestId: request.requestId, seedId: request.seedId, blueprintId: request.blueprintId, trainingRunId: request.trainingRunId };
  }

  private makeLoop(name: string, consumer: BusConsumer, handler: (message: BusMessage) => Promise<void>): LoopState {
    const health = new LoopHealth();
    const loop = new ConsumerLoop(
      name,
      consumer,
      handler,
      {
        onFailure: (error) => {
          health.failure = error;
          this.recordLoopFailure(name, consumer.stream, error);
        },
        onRecovered: () => {
          health.failure = undefined;
          this.checkRecovered();
        },
        onExit: (error) => {
          health.exit = error ?? new Error(`Kasmina prefetch ${name} task exited unexpectedly`);
          this.recordLoopFailure(name, consumer.stream, health.exit);
        },
      },
      this.options.backoff ?? DEFAULT_LOOP_BACKOFF,
      this.options.blockMs ?? CONSUMER_BLOCK_MS,
    );
    return { loop, health };
  }

  private recordLoopFailure(loop: string, stream: string, error: Error): void {
    if (this.state !== "running") return;
    const span = this.tracing.startSpan(PREFETCH_LOOP_SPAN, { loop, stream });
    span.recordException(error);
    span.end({ error: error.message });
    this.reportedIssue = true;
    this.options.onIssue?.(error);
  }

  private checkRecovered(): void {
    if (this.state !== "running" || !this.reportedIssue || this.pollTaskIssue() !== undefined) return;
    this.reportedIssue = false;
    this.options.onRecovered?.();
  }
}
