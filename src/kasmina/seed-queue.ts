// Bounded per-seed pending-event queue (spec §10.2, KAS-H1-002, DESIGN §3 decision 1).
//
// On overflow the queue keeps the newest `capacity - 1` real events behind one head marker
// (`seed_queue_dropped`). The marker's count is cumulative: a marker that falls out of the
// window hands its count to the new one, so the head marker always equals every real event
// discarded since the last drain(). Markers pushed by the caller (e.g. a drained batch put back
// after a failed flush) are merged into the head marker rather than kept in place.
//
// Storage is a fixed ring buffer: each pushed event costs O(1) and nothing is ever shifted,
// unlike the original's per-element front removal (O(n²) for a large overflow).

export const MAX_PENDING_EVENTS = 64;

export interface SeedQueueOptions<E> {
  readonly capacity?: number;
  /** Builds the head marker for `dropped` discarded events. */
  readonly makeMarker: (dropped: number) => E;
  /** The dropped count if `event` is a marker, else undefined. */
  readonly markerCount: (event: E) => number | undefined;
  /** Real events discarded by one push (markers never count); wire to `kasmina.seed_queue.dropped`. */
  readonly onDropped?: (realEventsDropped: number) => void;
}

export class SeedQueue<E> {
  readonly capacity: number;
  private readonly makeMarker: (dropped: number) => E;
  private readonly markerCount: (event: E) => number | undefined;
  private readonly onDropped: ((realEventsDropped: number) => void) | undefined;
  private readonly ring: (E | undefined)[];
  private head = 0;
  private count = 0;
  private droppedSinceDrain = 0;
  private marker: E | undefined;
  private pushed = 0;

  constructor(options: SeedQueueOptions<E>) {
    const capacity = options.capacity ?? MAX_PENDING_EVENTS;
    // One slot is the marker's, so at least one real event must fit beside it.
    if (!Number.isInteger(capacity) || capacity < 2) {
      throw new RangeError(`SeedQueue capacity must be an integer ≥ 2, got ${capacity}`);
    }
    this.capacity = capacity;
    this.makeMarker = options.makeMarker;
    this.markerCount = options.markerCount;
    this.onDropped = options.onDropped;
    this.ring = new Array<E | undefined>(capacity).fill(undefined);
  }

  /** Entries a drain() would return now, the head marker included. */
  get length(): number {
    return this.count + (this.marker === undefined ? 0 : 1);
  }

  /** Real events discarded since the last drain (the head marker's count). */
  get dropped(): number {
    return this.droppedSinceDrain;
  }

  push(event: E): void {
    this.pushAll([event]);
  }

  pushAll(events: Iterable<E>): void {
    let realDropped = 0;
    let markersMerged = false;
    for (const event of events) {
      const carried = this.markerCount(event);
      if (carried !== undefined) {
        this.droppedSinceDrain += carried;
        markersMerged = true;
        // A marker may have appeared, which takes a slot from the real events.
        realDropped += this.trimTo(this.realLimit());
        continue;
      }
      realDropped += this.trimTo(this.realLimit() - 1);
      // After the first discard the marker exists and the limit drops by one more slot.
      realDropped += this.trimTo(this.realLimit() - 1);
      this.ring[(this.head + this.count) % this.capacity] = event;
      this.count += 1;
      this.pushed += 1;
    }
    if (realDropped > 0 || markersMerged) {
      // One marker object per overflowing push, carrying the cumulative count.
      this.marker = this.droppedSinceDrain > 0 ? this.makeMarker(this.droppedSinceDrain) : undefined;
    }
    if (realDropped > 0) {
      this.onDropped?.(realDropped);
    }
  }

  /** The queued entries, oldest first behind the marker, without removing them. */
  toArray(): E[] {
    const out: E[] = [];
    if (this.marker !== undefined) {
      out.push(this.marker);
    }
    for (let i = 0; i < this.count; i += 1) {
      out.push(this.ring[(this.head + i) % this.capacity] as E);
    }
    return out;
  }

  /**
   * Real events ever pushed: the queued real events are numbers [pushedTotal - realLength,
   * pushedTotal), which lets the state store write each event once instead of the whole queue.
   */
  get pushedTotal(): number {
    return this.pushed;
  }

  /** Real events queued (the head marker not counted). */
  get realLength(): number {
    return this.count;
  }

  /** Real events from the `from`-th queued one (0 = oldest) to the newest. */
  realEventsFrom(from: number): E[] {
    const out: E[] = [];
    for (let i = Math.max(0, from); i < this.count; i += 1) out.push(this.ring[(this.head + i) % this.capacity] as E);
    return out;
  }

  /** Puts back a queue saved before a restart: the dropped count, the real events and the push count. */
  restore(dropped: number, events: readonly E[], pushedTotal: number): void {
    this.drain();
    if (dropped > 0) this.pushAll([this.makeMarker(dropped)]);
    this.pushAll(events);
    this.pushed = pushedTotal;
  }

  /** Removes and returns every entry in order; the dropped count starts again from zero. */
  drain(): E[] {
    const out = this.toArray();
    this.ring.fill(undefined); // release references to drained events
    this.head = 0;
    this.count = 0;
    this.droppedSinceDrain = 0;
    this.marker = undefined;
    return out;
  }

  /** Real events that fit beside the marker, if there is one (or will be, once we discard). */
  private realLimit(): number {
    return this.droppedSinceDrain > 0 ? this.capacity - 1 : this.capacity;
  }

  /** Discards the oldest real events until at most `limit` remain; returns how many. */
  private trimTo(limit: number): number {
    let discarded = 0;
    while (this.count > limit && this.count > 0) {
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.count -= 1;
      this.droppedSinceDrain += 1;
      discarded += 1;
    }
    return discarded;
  }
}
