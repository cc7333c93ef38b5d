// Telemetry building blocks (spec §9): events, priorities, packets and the outbound packet log.
import {
  MessagePriority,
  TelemetryLevel,
  type HealthStatus,
  type MetricPoint,
  type TelemetryEvent,
  type TelemetryPacket,
  type Timestamp,
} from "../leyline.js";

/** Attributes as the domain writes them; packets carry them as Maps (ts-proto `useMapType`). */
export type Attributes = Record<string, string>;

const asMap = (attributes: Attributes): Map<string, string> => new Map(Object.entries(attributes));

export function event(description: string, level: TelemetryLevel, attributes: Attributes = {}): TelemetryEvent {
  return { eventId: "", description, level, attributes: asMap(attributes) };
}

export const info = (description: string, attributes?: Attributes): TelemetryEvent =>
  event(description, TelemetryLevel.TELEMETRY_LEVEL_INFO, attributes);
export const warning = (description: string, attributes?: Attributes): TelemetryEvent =>
  event(description, TelemetryLevel.TELEMETRY_LEVEL_WARNING, attributes);

/** Spec §9.4: CRITICAL → CRITICAL; WARNING or ERROR → HIGH; anything else → NORMAL. LOW is never produced. */
export function priorityOf(level: TelemetryLevel): MessagePriority {
  if (level === TelemetryLevel.TELEMETRY_LEVEL_CRITICAL) return MessagePriority.MESSAGE_PRIORITY_CRITICAL;
  if (level === TelemetryLevel.TELEMETRY_LEVEL_WARNING || level === TelemetryLevel.TELEMETRY_LEVEL_ERROR) {
    return MessagePriority.MESSAGE_PRIORITY_HIGH;
  }
  return MessagePriority.MESSAGE_PRIORITY_NORMAL;
}

export function priorityOfEvents(events: Iterable<TelemetryEvent>, floor = MessagePriority.MESSAGE_PRIORITY_NORMAL): MessagePriority {
  let priority = floor;
  for (const e of events) priority = Math.max(priority, priorityOf(e.level));
  return priority;
}

export function metric(name: string, value: number, unit: string, attributes: Attributes = {}): MetricPoint {
  return { name, value, unit, attributes: asMap(attributes) };
}

export function timestampFromMs(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

export interface PacketParts {
  packetId: string;
  wallMs: number;
  metrics: MetricPoint[];
  events: TelemetryEvent[];
  status: HealthStatus;
  summary: string;
  indicators: Attributes;
}

/** Spec §9.1: level is always INFO; events without an id get `evt-<n>` numbered per packet. */
export function buildPacket(parts: PacketParts): TelemetryPacket {
  return {
    packetId: parts.packetId,
    timestamp: timestampFromMs(parts.wallMs),
    sourceSubsystem: "kasmina",
    level: TelemetryLevel.TELEMETRY_LEVEL_INFO,
    metrics: parts.metrics.map((m) => ({ ...m, attributes: new Map(m.attributes) })),
    events: parts.events.map((e, i) => ({ ...e, eventId: e.eventId !== "" ? e.eventId : `evt-${i + 1}`, attributes: new Map(e.attributes) })),
    spans: [],
    systemHealth: { status: parts.status, summary: parts.summary, indicators: asMap(parts.indicators) },
  };
}

export type PacketListener = (packet: TelemetryPacket) => void;

/**
 * The outbound buffer DrainTelemetry reads: bounded, the oldest packet dropped first and counted,
 * so a controller that never drains cannot grow the server without bound.
 */
export class PacketLog {
  private readonly ring: (TelemetryPacket | undefined)[];
  private head = 0;
  private count = 0;
  private droppedTotal = 0;
  private readonly listeners = new Set<PacketListener>();

  constructor(readonly capacity = 10_000) {
    this.ring = new Array<TelemetryPacket | undefined>(capacity).fill(undefined);
  }

  get size(): number {
    return this.count;
  }

  /** Packets discarded unread since start-up. */
  get dropped(): number {
    return this.droppedTotal;
  }

  append(packet: TelemetryPacket): void {
    if (this.count === this.capacity) {
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.count -= 1;
      this.droppedTotal += 1;
    }
    this.ring[(this.head + this.count) % this.capacity] = packet;
    this.count += 1;
    for (const listener of this.listeners) {
      try {
        listener(packet);
      } catch {
        // A failing watcher never disturbs the emitter (spec §9.7: callback errors are swallowed).
      }
    }
  }

  /** Oldest first; max 0 means all. */
  drain(max = 0): TelemetryPacket[] {
    const n = max <= 0 ? this.count : Math.min(max, this.count);
    const out: TelemetryPacket[] = new Array<TelemetryPacket>(n);
    for (let i = 0; i < n; i++) {
      const idx = (this.head + i) % this.capacity;
      out[i] = this.ring[idx] as TelemetryPacket;
      this.ring[idx] = undefined;
    }
    this.head = (this.head + n) % this.capacity;
    this.count -= n;
    return out;
  }

  /**
   * The oldest packets that fit under both bounds, without removing them: at most `max` (0 = no
   * count bound) and at most `budget` by `sizeOf`. `blocked` is true when the oldest packet alone
   * is larger than the budget (it can never be sent whole). Callers remove what they sent with
   * discard(), once the reply is built, so a packet leaves the log only inside a reply.
   */
  peekWithin(max: number, budget: number, sizeOf: (packet: TelemetryPacket) => number): { packets: TelemetryPacket[]; blocked: boolean } {
    const limit = max <= 0 ? this.count : Math.min(max, this.count);
    const packets: TelemetryPacket[] = [];
    let used = 0;
    for (let i = 0; i < limit; i++) {
      const packet = this.ring[(this.head + i) % this.capacity] as TelemetryPacket;
      const size = sizeOf(packet);
      if (used + size > budget) return { packets, blocked: i === 0 };
      used += size;
      packets.push(packet);
    }
    return { packets, blocked: false };
  }

  /** Removes the n oldest packets (after a reply carried them). */
  discard(n: number): void {
    if (n > 0) this.drain(n);
  }

  /** Removes the oldest packet unread and counts it as dropped (one that can never be delivered). */
  dropOldest(): void {
    if (this.count === 0) return;
    this.drain(1);
    this.droppedTotal += 1;
  }

  peek(): TelemetryPacket[] {
    const out: TelemetryPacket[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.ring[(this.head + i) % this.capacity] as TelemetryPacket);
    return out;
  }

  /** Puts back the dropped count saved before a restart (DESIGN §2.2). */
  restoreDropped(count: number): void {
    this.droppedTotal = count;
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  subscribe(listener: PacketListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
