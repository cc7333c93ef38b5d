// In-process bus (KASMINA_BUS=memory): the subset of Redis Streams semantics the prefetch path
// relies on (consumer groups, pending entries, acknowledgement, reclaiming stale entries), kept in
// memory so the same prefetch path runs on one machine with nothing else installed.
import type { BusEnvelope } from "../leyline.js";
import { systemClock, type Clock } from "../kasmina/ports.js";
import { entryFields, type BusConsumer, type ConsumerOptions, type PrefetchBus, type StreamEntry } from "./bus.js";
import { GroupConsumer, type StreamTransport } from "./group-consumer.js";

interface StoredEntry extends StreamEntry {
  seq: number;
}

interface PendingEntry {
  entry: StoredEntry;
  consumer: string;
  deliveredAtMs: number;
}

interface GroupState {
  lastDelivered: number;
  pending: Map<string, PendingEntry>;
}

interface StreamState {
  entries: StoredEntry[];
  lastSeq: number;
  groups: Map<string, GroupState>;
  /** Blocked readers, woken by the next append. */
  waiters: Set<() => void>;
}

export interface MemoryStreamsOptions {
  clock?: Clock;
  /** Oldest entries beyond this many are trimmed (like XADD MAXLEN). */
  maxLength?: number;
}

/** In-memory streams shared by every transport connected to them. */
export class MemoryStreams {
  private readonly streams = new Map<string, StreamState>();
  private readonly clock: Clock;
  private readonly maxLength: number;

  constructor(options: MemoryStreamsOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.maxLength = options.maxLength ?? 10_000;
  }

  append(stream: string, fields: Iterable<[string, Buffer]>): string {
    const state = this.state(stream);
    state.lastSeq += 1;
    const id = `${state.lastSeq}-0`;
    state.entries.push({ id, seq: state.lastSeq, fields: new Map(fields) });
    if (state.entries.length > this.maxLength) state.entries.splice(0, state.entries.length - this.maxLength);
    const waiters = [...state.waiters];
    state.waiters.clear();
    for (const wake of waiters) wake();
    return id;
  }

  createGroup(stream: string, group: string): void {
    const state = this.state(stream);
    if (!state.groups.has(group)) state.groups.set(group, { lastDelivered: state.lastSeq, pending: new Map() });
  }

  /** Entries of `stream` (oldest first); for tests and diagnostics. */
  range(stream: string): StreamEntry[] {
    return [...(this.streams.get(stream)?.entries ?? [])];
  }

  /** Number of entries delivered to `group` but not acknowledged (XPENDING count). */
  pendingCount(stream: string, group: string): number {
    return this.streams.get(stream)?.groups.get(group)?.pending.size ?? 0;
  }

  /** Readers blocked on `stream` right now; for tests and diagnostics. */
  blockedReaders(stream: string): number {
    return this.streams.get(stream)?.waiters.size ?? 0;
  }

  readNew(stream: string, group: string, consumer: string, count: number): StreamEntry[] {
    const { state, groupState } = this.group(stream, group);
    const fresh = state.entries.filter((entry) => entry.seq > groupState.lastDelivered).slice(0, count);
    const now = this.nowMs();
    for (const entry of fresh) {
      groupState.lastDelivered = entry.seq;
      groupState.pending.set(entry.id, { entry, consumer, deliveredAtMs: now });
    }
    return fresh;
  }

  readOwnPending(stream: string, group: string, consumer: string, count: number): StreamEntry[] {
    const { groupState } = this.group(stream, group);
    return [...groupState.pending.values()]
      .filter((pending) => pending.consumer === consumer)
      .sort((a, b) => a.entry.seq - b.entry.seq)
      .slice(0, count)
      .map((pending) => pending.entry);
  }

  autoClaim(stream: string, group: string, consumer: string, minIdleMs: number, count: number): StreamEntry[] {
    const { groupState } = this.group(stream, group);
    const now = this.nowMs();
    const stale = [...groupState.pending.values()]
      .filter((pending) => now - pending.deliveredAtMs >= minIdleMs)
      .sort((a, b) => a.entry.seq - b.entry.seq)
      .slice(0, count);
    for (const pending of stale) {
      pending.consumer = consumer;
      pending.deliveredAtMs = now;
    }
    return stale.map((pending) => pending.entry);
  }

  ack(stream: string, group: string, id: string): void {
    this.streams.get(stream)?.groups.get(group)?.pending.delete(id);
  }

  /** Resolves at the next append to `stream`; `cancel` removes the waiter. */
  waitForAppend(stream: string): { appended: Promise<void>; cancel: () => void } {
    const state = this.state(stream);
    let wake: () => void = () => undefined;
    const appended = new Promise<void>((resolve) => {
      wake = resolve;
    });
    state.waiters.add(wake);
    return { appended, cancel: () => state.waiters.delete(wake) };
  }

  private nowMs(): number {
    return this.clock.monotonic() * 1000;
  }

  private state(stream: string): StreamState {
    let state = this.streams.get(stream);
    if (state === undefined) {
      state = { entries: [], lastSeq: 0, groups: new Map(), waiters: new Set() };
      this.streams.set(stream, state);
    }
    return state;
  }

  private group(stream: string, group: string): { state: StreamState; groupState: GroupState } {
    const state = this.streams.get(stream);
    const groupState = state?.groups.get(group);
    // Same error text as Redis, so both buses fail alike when a group is missing.
    if (state === undefined || groupState === undefined) {
      throw new Error(`NOGROUP No such key '${stream}' or consumer group '${group}' in XREADGROUP with GROUP option`);
    }
    return { state, groupState };
  }
}

/** One consumer's connection to the in-memory streams; close() wakes its blocked read. */
class MemoryTransport implements StreamTransport {
  private closed = false;
  private readonly interrupters = new Set<() => void>();

  constructor(private readonly streams: MemoryStreams) {}

  async createGroup(stream: string, group: string): Promise<void> {
    this.assertOpen();
    this.streams.createGroup(stream, group);
  }

  async readGroup(stream: string, group: string, consumer: string, cursor: ">" | "0", count: number, blockMs?: number): Promise<StreamEntry[]> {
    this.assertOpen();
    if (cursor === "0") return this.streams.readOwnPending(stream, group, consumer, count);
    const now = this.streams.readNew(stream, group, consumer, count);
    if (now.length > 0 || blockMs === undefined) return now;
    const waiter = this.streams.waitForAppend(stream);
    let timer: NodeJS.Timeout | undefined;
    let interrupt: () => void = () => undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, blockMs);
    });
    const interrupted = new Promise<void>((resolve) => {
      interrupt = resolve;
      this.interrupters.add(resolve);
    });
    try {
      await Promise.race([waiter.appended, timedOut, interrupted]);
    } finally {
      clearTimeout(timer);
      waiter.cancel();
      this.interrupters.delete(interrupt);
    }
    this.assertOpen();
    return this.streams.readNew(stream, group, consumer, count);
  }

  async autoClaim(stream: string, group: string, consumer: string, minIdleMs: number, count: number): Promise<StreamEntry[]> {
    this.assertOpen();
    return this.streams.autoClaim(stream, group, consumer, minIdleMs, count);
  }

  async ack(stream: string, group: string, id: string): Promise<void> {
    this.assertOpen();
    this.streams.ack(stream, group, id);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const interrupt of this.interrupters) interrupt();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("in-memory bus connection is closed");
  }
}

export interface MemoryBusOptions extends MemoryStreamsOptions {
  secret?: string | undefined;
  /** Share streams between several bus instances (tests); a fresh store by default. */
  streams?: MemoryStreams;
}

export class MemoryBus implements PrefetchBus {
  readonly streams: MemoryStreams;
  private readonly secret: string | undefined;
  private readonly consumers = new Set<GroupConsumer>();
  private closed = false;

  constructor(options: MemoryBusOptions = {}) {
    this.streams = options.streams ?? new MemoryStreams(options);
    this.secret = options.secret;
  }

  async publish(stream: string, envelope: BusEnvelope): Promise<string> {
    this.assertOpen();
    return this.streams.append(stream, entryFields(envelope, this.secret));
  }

  async ensureGroup(stream: string, group: string): Promise<void> {
    this.assertOpen();
    this.streams.createGroup(stream, group);
  }

  consumer(options: ConsumerOptions): BusConsumer {
    this.assertOpen();
    const consumer = new GroupConsumer(new MemoryTransport(this.streams), options, this.secret, (done) => this.consumers.delete(done));
    this.consumers.add(consumer);
    return consumer;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.consumers].map((consumer) => consumer.close()));
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("in-memory bus is closed");
  }
}
