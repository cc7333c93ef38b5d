// One backward pass of one seed, streamed as chunks (DESIGN §2 ReportGradients). Chunks are
// validated and reduced as they arrive; results are staged here and applied to the session only by
// commit(), in one step, so a stream with any bad chunk changes nothing (DESIGN §2: "a stream with
// one bad chunk applies none of its chunks").
//
// Per chunk: Σg² (a partial norm), plus either the projection indices that fall in the chunk
// (indices are sorted, so a binary search finds the chunk's slice of them) or, in exact mode, a
// copy of the chunk into the (parameter, side) buffer, since pairing needs the whole gradient.
// Nothing else of a gradient is kept.

import { Coverage } from "./coverage.js";
import { GradientFramingError, type GradientFramingCode } from "./gradient-framing-error.js";
import type { Observation, ObserverSide } from "./gradient-observer.js";
import type { PassResult } from "./isolation-report.js";
import { firstNonFinite, sumSquaresF32 } from "./js-backend.js";
import type { ReductionBackend } from "./reduction-backend.js";

/** Wire values of `esper.kasmina.v1.GradientSide`. */
export const GradientSide = { UNSPECIFIED: 0, HOST: 1, SEED: 2 } as const;

/** One ReportGradientsRequest, decoded (seed_id is the RPC layer's business). */
export interface GradientChunk {
  readonly paramKey: string;
  /** GradientSide wire number: HOST (1) or SEED (2). */
  readonly side: number;
  readonly numel: number | bigint;
  readonly offset: number | bigint;
  /**
   * float32 values: a Float32Array, or little-endian bytes. Bytes at a 4-byte-aligned offset are
   * viewed in place (ts-proto aligns decoded `bytes`); unaligned bytes are copied once here.
   */
  readonly values: Float32Array | Uint8Array;
}

/** How a parameter is observed; fixed per key for the session's lifetime (spec §13.2). */
export interface ParamPlan {
  readonly numel: number;
  /** Sorted projection indices; null in exact mode (whole-gradient pairing). */
  readonly indices: Float64Array | null;
  /** numel / indices.length in projection mode; 1 in exact mode. */
  readonly scale: number;
}

export interface StagedObservation extends Observation {
  readonly side: ObserverSide;
  readonly paramKey: string;
}

/**
 * What a pass needs from its session (kept narrow so this module does not import the session).
 * Plans and copy bytes a pass takes are provisional: the session keeps them only when the pass
 * commits, so a rejected or cancelled pass leaves the session exactly as it was.
 */
export interface PassTarget {
  readonly backend: ReductionBackend;
  /** numel fixed for the key by an earlier pass, an open pass or an observation, if any. */
  knownNumel(paramKey: string): number | undefined;
  /** The key's plan, held for this pass; a new key counts against the session's parameter limit. Throws GradientLimitError. */
  holdPlan(paramKey: string, numel: number): ParamPlan;
  /** Books bytes of exact-mode copies before any is made. Throws GradientLimitError past the budget. */
  reserveCopyBytes(bytes: number, where: string): void;
  /** Ends a pass: gives back its held plans (kept when committed) and its reserved bytes. */
  releasePass(heldKeys: Iterable<string>, reservedBytes: number, committed: boolean): void;
  applyPass(observations: readonly StagedObservation[], elements: number, chunks: number): PassResult;
}

const SIDE_LABEL: Readonly<Record<ObserverSide, string>> = { host: "HOST", seed: "SEED" };

class SideSlot {
  readonly coverage = new Coverage();
  normSq = 0;
  /** Set once the single empty chunk of a numel-0 parameter arrived. */
  emptyDeclared = false;
  /**
   * Exact mode: copies of the chunks as they arrived, assembled into one gradient at commit, so
   * nothing is allocated for a claimed numel before its bytes are here.
   */
  readonly parts: { offset: number; values: Float32Array }[] = [];

  /** Projection samples (projection mode); null in exact mode. */
  constructor(readonly sample: Float32Array | null) {}
}

class ParamEntry {
  host: SideSlot | undefined;
  seed: SideSlot | undefined;

  constructor(
    readonly key: string,
    readonly plan: ParamPlan,
    readonly firstChunk: number,
  ) {}
}

interface QueuedChunk {
  readonly slot: SideSlot;
  readonly values: Float32Array;
  readonly where: ChunkPlace;
}

interface ChunkPlace {
  readonly seq: number;
  readonly key: string;
  readonly side: ObserverSide;
  readonly offset: number;
  readonly length: number;
}

function describe(p: ChunkPlace): string {
  return `chunk ${p.seq} (param ${quoteKey(p.key)}, ${SIDE_LABEL[p.side]}, elements [${p.offset}, ${p.offset + p.length}))`;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type PassState = "open" | "committed" | "aborted" | "failed";

export class GradientPass {
  private state: PassState = "open";
  private failure: unknown = undefined;
  /** Parameters in first-seen order: the commit applies them in this order. */
  private params = new Map<string, ParamEntry>();
  private queue: QueuedChunk[] = [];
  private queuedBytes = 0;
  private chunkCount = 0;
  private elementCount = 0;
  /** Keys whose plan this pass holds, and exact-mode copy bytes it booked (given back at the end). */
  private held = new Set<string>();
  private reservedBytes = 0;

  constructor(private readonly target: PassTarget) {}

  /** Chunks fed so far (including a rejected one). */
  get chunks(): number {
    return this.chunkCount;
  }

  /** Elements accepted so far. */
  get elements(): number {
    return this.elementCount;
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  /** Validates and reduces one chunk. Throws GradientFramingError on the first problem; the pass is then dead. */
  feed(chunk: GradientChunk): void {
    this.ensureOpen();
    const seq = ++this.chunkCount;
    try {
      this.accept(chunk, seq);
    } catch (err) {
      throw this.fail(err);
    }
  }

  /**
   * Checks that every (parameter, side) seen was covered exactly, then applies the pass to the
   * session: for each parameter in first-seen order, the host side then the seed side (the order
   * in which the original's hooks fire for a shared parameter).
   */
  commit(): PassResult {
    this.ensureOpen();
    try {
      this.flushQueue();
      const staged: StagedObservation[] = [];
      for (const entry of this.params.values()) {
        this.stage(entry, "host", entry.host, staged);
        this.stage(entry, "seed", entry.seed, staged);
      }
      const result = this.target.applyPass(staged, this.elementCount, this.chunkCount);
      this.finish("committed");
      return result;
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** Drops everything staged. A no-op once the pass has ended (so stream clean-up can always call it). */
  abort(): void {
    if (this.state === "open") this.finish("aborted");
  }

  private stage(entry: ParamEntry, side: ObserverSide, slot: SideSlot | undefined, out: StagedObservation[]): void {
    if (slot === undefined) return;
    const { numel } = entry.plan;
    const gap = slot.coverage.firstGap(numel);
    if (gap !== null) {
      throw new GradientFramingError(
        "incomplete",
        `param ${quoteKey(entry.key)} ${SIDE_LABEL[side]}: chunks cover ${slot.coverage.covered} of ${numel} elements; ` +
          `elements [${gap[0]}, ${gap[1]}) are missing`,
      );
    }
    let sample = slot.sample;
    if (sample === null) {
      // Every byte has arrived (coverage is complete): only now is the whole gradient allocated.
      sample = new Float32Array(numel);
      for (const part of slot.parts) sample.set(part.values, part.offset);
      slot.parts.length = 0;
    }
    out.push({ side, paramKey: entry.key, normSq: slot.normSq, sample, scale: entry.plan.scale });
  }

  private accept(chunk: GradientChunk, seq: number): void {
    const key = chunk.paramKey;
    if (typeof key !== "string" || key.length === 0) {
      throw new GradientFramingError("empty_param_key", `chunk ${seq}: param_key is empty`);
    }
    let side: ObserverSide;
    if (chunk.side === GradientSide.HOST) side = "host";
    else if (chunk.side === GradientSide.SEED) side = "seed";
    else {
      throw new GradientFramingError(
        "unknown_side",
        `chunk ${seq} (param ${quoteKey(key)}): side ${String(chunk.side)} is neither HOST (1) nor SEED (2)`,
      );
    }
    const head = `chunk ${seq} (param ${quoteKey(key)}, ${SIDE_LABEL[side]})`;
    const numel = toIndex(chunk.numel, "numel", head);
    const offset = toIndex(chunk.offset, "offset", head);

    let entry = this.params.get(key);
    if (entry !== undefined) {
      if (entry.plan.numel !== numel) {
        throw framing("numel_mismatch", `${head}: numel ${numel} differs from ${entry.plan.numel} in chunk ${entry.firstChunk}`);
      }
    } else {
      const known = this.target.knownNumel(key);
      if (known !== undefined && known !== numel) {
        throw framing("numel_mismatch", `${head}: numel ${numel} differs from ${known} seen earlier in this session`);
      }
    }

    // Backends that reduce each chunk as it arrives keep no reference to it, so unaligned bytes can
    // be copied into one reused buffer instead of a fresh 4 MiB allocation per chunk (GC pressure).
    const values = toFloat32(chunk.values, head, this.target.backend.batchBytes <= 0);
    const length = values.length;
    const where: ChunkPlace = { seq, key, side, offset, length };
    if (length === 0 && numel > 0) {
      throw framing("empty_chunk", `${describe(where)}: no values (only a numel-0 parameter is sent as one empty chunk)`);
    }
    if (offset + length > numel) {
      throw framing("out_of_range", `${describe(where)}: exceeds numel ${numel}`);
    }

    if (entry === undefined) {
      const plan = this.target.holdPlan(key, numel);
      this.held.add(key);
      entry = new ParamEntry(key, plan, seq);
      this.params.set(key, entry);
    }
    let slot = entry[side];
    if (length === 0) {
      // numel 0: the one empty chunk declares the (parameter, side).
      if (slot?.emptyDeclared) throw framing("overlap", `${describe(where)}: this empty parameter was already sent`);
    } else if (slot !== undefined) {
      const overlap = slot.coverage.add(offset, offset + length);
      if (overlap !== null) {
        throw framing("overlap", `${describe(where)}: elements [${overlap[0]}, ${overlap[1]}) were already received`);
      }
    }
    if (slot === undefined) {
      const { plan } = entry;
      // Exact mode keeps the whole gradient until commit: the claim is booked against the copy
      // budget before a single byte is copied (a numel of 2^33 is refused here, not allocated).
      if (plan.indices === null) {
        this.target.reserveCopyBytes(plan.numel * 4, head);
        this.reservedBytes += plan.numel * 4;
      }
      slot = new SideSlot(plan.indices === null ? null : new Float32Array(plan.indices.length));
      if (length > 0) slot.coverage.add(offset, offset + length);
      entry[side] = slot;
    }
    slot.emptyDeclared ||= length === 0;
    this.elementCount += length;
    if (length === 0) return;

    const { indices } = entry.plan;
    // values may be a view of the transport buffer or of a reused scratch: exact mode copies it.
    if (slot.sample === null) slot.parts.push({ offset, values: values.slice() });
    else if (indices !== null) gatherRange(values, offset, indices, slot.sample);

    const { backend } = this.target;
    if (backend.batchBytes <= 0) {
      slot.normSq += checkedSumSquares(backend.sumSquares(values), values, where);
    } else {
      // The chunk array is kept (not copied) until the batch goes out; the batch size bounds that.
      this.queue.push({ slot, values, where });
      this.queuedBytes += values.byteLength;
      if (this.queuedBytes >= backend.batchBytes) this.flushQueue();
    }
  }

  private flushQueue(): void {
    const queue = this.queue;
    if (queue.length === 0) return;
    this.queue = [];
    this.queuedBytes = 0;
    const sums = this.target.backend.sumSquaresBatch(queue.map((q) => q.values));
    // Queue order is arrival order, so the first non-finite chunk found is the earliest one.
    for (let i = 0; i < queue.length; i++) {
      const q = queue[i];
      q.slot.normSq += checkedSumSquares(sums[i], q.values, q.where);
    }
  }

  /** Ends the pass with the first problem (an earlier queued non-finite chunk wins over a later one). */
  private fail(err: unknown): unknown {
    let reported = err;
    if (err instanceof GradientFramingError && this.queue.length > 0) {
      try {
        this.flushQueue();
      } catch (earlier) {
        if (earlier instanceof GradientFramingError) reported = earlier;
      }
    }
    this.failure = reported;
    this.finish("failed");
    return reported;
  }

  private finish(state: PassState): void {
    this.state = state;
    this.params = new Map();
    this.queue = [];
    this.queuedBytes = 0;
    const held = this.held;
    const reserved = this.reservedBytes;
    this.held = new Set();
    this.reservedBytes = 0;
    this.target.releasePass(held, reserved, state === "committed");
  }

  private ensureOpen(): void {
    if (this.state === "open") return;
    if (this.state === "failed") throw this.failure;
    throw new Error(`gradient pass is already ${this.state}`);
  }
}

/** A parameter key for a message: quoted, at most 128 characters of it (DESIGN §2.0). */
export function quoteKey(key: string): string {
  return key.length <= 128 ? JSON.stringify(key) : `${JSON.stringify(key.slice(0, 128))}…`;
}

function framing(code: GradientFramingCode, message: string): GradientFramingError {
  return new GradientFramingError(code, message);
}

/**
 * A backend's Σg² for a chunk, checked. Σg² of finite float32 values is finite in double, so a
 * non-finite result means a NaN/±Inf in the chunk, except on float32 device backends, which can
 * overflow on huge finite values: then the exact double sum is taken instead.
 */
function checkedSumSquares(sum: number, values: Float32Array, where: ChunkPlace): number {
  if (Number.isFinite(sum)) return sum;
  const bad = firstNonFinite(values);
  if (bad >= 0) {
    throw framing("non_finite", `${describe(where)}: non-finite value ${values[bad]} at element ${where.offset + bad}`);
  }
  return sumSquaresF32(values);
}

/** sample[i] = values[indices[i] - offset] for the sorted indices inside [offset, offset + values.length). */
export function gatherRange(values: Float32Array, offset: number, indices: Float64Array, sample: Float32Array): void {
  const end = offset + values.length;
  let i = lowerBound(indices, offset);
  for (; i < indices.length; i++) {
    const at = indices[i];
    if (at >= end) break;
    sample[i] = values[at - offset];
  }
}

function lowerBound(sorted: Float64Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function toIndex(value: number | bigint, field: string, head: string): number {
  if (typeof value === "bigint") {
    if (value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(value);
  } else if (Number.isSafeInteger(value) && value >= 0) {
    return value;
  }
  throw framing("bad_integer", `${head}: ${field} ${String(value)} is not a non-negative safe integer`);
}

let scratch = new Float32Array(0);

function toFloat32(values: Float32Array | Uint8Array, head: string, transient: boolean): Float32Array {
  if (values instanceof Float32Array) return values;
  if (values.byteLength % 4 !== 0) {
    throw framing("misaligned_values", `${head}: values are ${values.byteLength} bytes, not a whole number of float32s`);
  }
  if (!LITTLE_ENDIAN) {
    const view = new DataView(values.buffer, values.byteOffset, values.byteLength);
    const out = new Float32Array(values.byteLength / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  if (values.byteOffset % 4 === 0) return new Float32Array(values.buffer, values.byteOffset, values.byteLength / 4);
  // Raw transport bytes can sit at any offset (DESIGN §5): the one copy happens here.
  // `new Uint8Array(values)` always copies into an exact-size buffer; Buffer#slice would not.
  if (!transient) return new Float32Array(new Uint8Array(values).buffer);
  const n = values.byteLength / 4;
  if (scratch.length < n) scratch = new Float32Array(n);
  new Uint8Array(scratch.buffer, 0, values.byteLength).set(values);
  return scratch.subarray(0, n);
}
