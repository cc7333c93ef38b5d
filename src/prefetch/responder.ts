// Built-in kernel responder: plays Oona's part for KASMINA_BUS=memory (and stands in for Oona in
// tests over Redis). It reads prefetch requests and answers each from a kernel catalog: a ready
// reply when the blueprint is known, an error reply "unknown blueprint <id>" otherwise.
import { randomUUID } from "node:crypto";
import { BusMessageType, KernelArtifactError, KernelArtifactReady, KernelPrefetchRequest, type BusEnvelope } from "../leyline.js";
import { CONSUMER_BLOCK_MS, PREFETCH_STREAMS, type BusMessage, type PrefetchBus, type RejectionListener } from "./bus.js";
import { ConsumerLoop, DEFAULT_LOOP_BACKOFF, type LoopBackoff } from "./consumer-loop.js";

export interface KernelArtifact {
  artifactRef: string;
  checksum: string;
}

/** Where the responder finds compiled kernels; the app adapts its blueprint catalog to this. */
export interface KernelCatalog {
  lookup(blueprintId: string): KernelArtifact | undefined;
}

/** A catalog over a fixed table (built-in catalog, tests). */
export function staticKernelCatalog(entries: Readonly<Record<string, KernelArtifact>>): KernelCatalog {
  const table = new Map(Object.entries(entries));
  return { lookup: (blueprintId) => table.get(blueprintId) };
}

export interface PrefetchResponderOptions {
  bus: PrefetchBus;
  catalog: KernelCatalog;
  /** Consumer group on the request stream (default "kasmina-responder"). */
  group?: string;
  consumerName?: string;
  blockMs?: number;
  backoff?: LoopBackoff;
  claimMinIdleMs?: number;
  onRejected?: RejectionListener;
  /** A failed round or an exit of the responder loop (for the log). */
  onFailure?: (error: Error) => void;
}

export class PrefetchResponder {
  private loop: ConsumerLoop | undefined;
  private readonly group: string;

  constructor(private readonly options: PrefetchResponderOptions) {
    this.group = options.group ?? "kasmina-responder";
  }

  /** Idempotent. The request group exists when this resolves, so no request published later is missed. */
  async start(): Promise<void> {
    if (this.loop !== undefined) return;
    const { bus } = this.options;
    await bus.ensureGroup(PREFETCH_STREAMS.requests, this.group);
    if (this.loop !== undefined) return;
    const consumer = bus.consumer({
      stream: PREFETCH_STREAMS.requests,
      group: this.group,
      consumer: this.options.consumerName ?? `kasmina-responder-${randomUUID().slice(0, 8)}`,
      ...(this.options.claimMinIdleMs === undefined ? {} : { claimMinIdleMs: this.options.claimMinIdleMs }),
      ...(this.options.onRejected === undefined ? {} : { onRejected: this.options.onRejected }),
    });
    const report = (error: Error | undefined): void => {
      this.options.onFailure?.(error ?? new Error("Kasmina prefetch responder exited unexpectedly"));
    };
    this.loop = new ConsumerLoop(
      "responder",
      consumer,
      (message) => this.answer(message),
      { onFailure: report, onRecovered: () => undefined, onExit: report },
      this.options.backoff ?? DEFAULT_LOOP_BACKOFF,
      this.options.blockMs ?? CONSUMER_BLOCK_MS,
    );
    this.loop.start();
  }

  /** Idempotent. */
  async close(): Promise<void> {
    const loop = this.loop;
    this.loop = undefined;
    await loop?.stop();
  }

  private async answer(message: BusMessage): Promise<void> {
    if (message.envelope.messageType !== BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_REQUEST) {
      this.options.onRejected?.({ stream: message.stream, entryId: message.entryId, reason: "unexpected_message_type" });
      return;
    }
    let request: KernelPrefetchRequest;
    try {
      request = KernelPrefetchRequest.decode(message.envelope.payload);
    } catch {
      this.options.onRejected?.({ stream: message.stream, entryId: message.entryId, reason: "malformed_message" });
      return;
    }
    const artifact = this.options.catalog.lookup(request.blueprintId);
    const { bus } = this.options;
    if (artifact === undefined) {
      const error: KernelArtifactError = {
        requestId: request.requestId,
        blueprintId: request.blueprintId,
        reason: `unknown blueprint ${request.blueprintId}`,
      };
      await bus.publish(PREFETCH_STREAMS.errors, envelope(BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_ERROR, KernelArtifactError.encode(error).finish()));
      return;
    }
    const ready: KernelArtifactReady = {
      requestId: request.requestId,
      blueprintId: request.blueprintId,
      artifactRef: artifact.artifactRef,
      checksum: artifact.checksum,
      guardDigest: "",
      prewarmP50Ms: 0,
      prewarmP95Ms: 0,
    };
    await bus.publish(PREFETCH_STREAMS.ready, envelope(BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_READY, KernelArtifactReady.encode(ready).finish()));
  }
}

export function envelope(messageType: BusMessageType, payload: Uint8Array): BusEnvelope {
  return { messageType, payload: Buffer.from(payload), attributes: new Map() };
}
