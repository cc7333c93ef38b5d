// The read round of a consumer-group member, written once for both buses. A bus supplies only a
// StreamTransport (the handful of stream commands, Redis semantics); ordering, acknowledgement,
// redelivery and signature checks are decided here.
import {
  CONSUMER_BLOCK_MS,
  DEFAULT_CLAIM_MIN_IDLE_MS,
  openEntry,
  type BusConsumer,
  type ConsumerOptions,
  type MessageHandler,
  type PollResult,
  type StreamEntry,
} from "./bus.js";

/** Stream commands with Redis Streams semantics, on one connection owned by one consumer. */
export interface StreamTransport {
  /** XGROUP CREATE stream group $ MKSTREAM; BUSYGROUP (already exists) is success. */
  createGroup(stream: string, group: string): Promise<void>;
  /** XREADGROUP; cursor `>` = new entries (blocking up to blockMs), `0` = this consumer's own pending entries. */
  readGroup(stream: string, group: string, consumer: string, cursor: ">" | "0", count: number, blockMs?: number): Promise<StreamEntry[]>;
  /** XAUTOCLAIM stream group consumer minIdle 0-0 COUNT count: entries whose owner went quiet. */
  autoClaim(stream: string, group: string, consumer: string, minIdleMs: number, count: number): Promise<StreamEntry[]>;
  ack(stream: string, group: string, id: string): Promise<void>;
  /** Drops the connection; a blocked read rejects or returns at once. */
  close(): Promise<void>;
}

const BATCH = 16;

export class GroupConsumer implements BusConsumer {
  readonly stream: string;
  private closed = false;
  private groupReady = false;
  // Start by re-reading our own pending entries: a previous failure (or an earlier process with the
  // same consumer name) may have left entries read but not acknowledged.
  private recheckOwn = true;
  private blocking = false;
  private round: Promise<PollResult> | undefined;
  private closing: Promise<void> | undefined;
  private readonly claimMinIdleMs: number;

  constructor(
    private readonly transport: StreamTransport,
    private readonly options: ConsumerOptions,
    private readonly secret: string | undefined,
    private readonly onClosed?: (consumer: GroupConsumer) => void,
  ) {
    this.stream = options.stream;
    this.claimMinIdleMs = options.claimMinIdleMs ?? DEFAULT_CLAIM_MIN_IDLE_MS;
  }

  poll(handler: MessageHandler, blockMs = CONSUMER_BLOCK_MS): Promise<PollResult> {
    if (this.closed) return Promise.resolve("closed");
    if (this.round !== undefined) return Promise.reject(new Error(`consumer of ${this.stream} is already polling`));
    const round = this.pollOnce(handler, blockMs).finally(() => {
      this.round = undefined;
    });
    this.round = round;
    return round;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    // A blocked read holds nothing: cut it short. A round that is handling entries is allowed to
    // finish, so a handler that already ran also gets its acknowledgement.
    if (this.round !== undefined && !this.blocking) await this.round.catch(() => undefined);
    await this.transport.close();
    this.onClosed?.(this);
  }

  private async pollOnce(handler: MessageHandler, blockMs: number): Promise<PollResult> {
    const { stream, group, consumer } = this.options;
    try {
      if (!this.groupReady) {
        await this.transport.createGroup(stream, group);
        this.groupReady = true;
      }
      let entries: StreamEntry[] = [];
      if (this.recheckOwn) {
        entries = await this.transport.readGroup(stream, group, consumer, "0", BATCH);
        if (entries.length === 0) this.recheckOwn = false;
      }
      if (entries.length === 0) entries = await this.transport.autoClaim(stream, group, consumer, this.claimMinIdleMs, BATCH);
      if (entries.length === 0 && !this.closed) {
        this.blocking = true;
        try {
          entries = await this.transport.readGroup(stream, group, consumer, ">", BATCH, blockMs);
        } catch (error) {
          // A read cut short by close() is the expected end of the consumer, not a failure.
          if (this.closed) return "closed";
          throw error;
        } finally {
          this.blocking = false;
        }
      }
      if (this.closed && entries.length === 0) return "closed";
      for (const entry of entries) await this.deliver(entry, handler);
      return entries.length;
    } catch (error) {
      // After any failure: the group may be gone (server restarted empty) and a handler may have
      // left an entry unacknowledged; check both on the next round.
      this.groupReady = false;
      this.recheckOwn = true;
      throw error;
    }
  }

  private async deliver(entry: StreamEntry, handler: MessageHandler): Promise<void> {
    const { stream, group } = this.options;
    const opened = openEntry(entry, this.secret);
    if ("reason" in opened) {
      // Dropped for good: acknowledged so it is never redelivered, and reported.
      await this.transport.ack(stream, group, entry.id);
      this.options.onRejected?.({ stream, entryId: entry.id, reason: opened.reason, detail: opened.detail });
      return;
    }
    await handler({ stream, entryId: entry.id, envelope: opened.envelope });
    await this.transport.ack(stream, group, entry.id);
  }
}
