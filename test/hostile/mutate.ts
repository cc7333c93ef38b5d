// Seeded mutations of protobuf wire bytes for the hostile-input suite: random bytes, bit flips,
// truncation, field-number and wire-type changes, huge lengths and huge counts, applied at the top
// level or inside a nested message (whose length prefix is then rewritten to match).

/** mulberry32: small, fast, and the same sequence for the same seed on every machine. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

export function varint(value: bigint): Uint8Array {
  const out: number[] = [];
  let v = BigInt.asUintN(64, value);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return Uint8Array.from(out);
}

function readVarint(bytes: Uint8Array, at: number): { value: bigint; end: number } | undefined {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    const byte = bytes[at + i];
    if (byte === undefined) return undefined;
    value |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return { value, end: at + i + 1 };
  }
  return undefined;
}

export interface WireField {
  field: number;
  wireType: number;
  /** Offset of the tag. */
  start: number;
  /** Offset of the value (after the length prefix for LEN fields). */
  valueStart: number;
  end: number;
}

/** Top-level fields, or undefined when the bytes are not a well-formed message. */
export function parseFields(bytes: Uint8Array): WireField[] | undefined {
  const fields: WireField[] = [];
  let at = 0;
  while (at < bytes.length) {
    const tag = readVarint(bytes, at);
    if (tag === undefined) return undefined;
    const field = Number(tag.value >> 3n);
    const wireType = Number(tag.value & 7n);
    if (field === 0) return undefined;
    let valueStart = tag.end;
    let end: number;
    if (wireType === 0) {
      const v = readVarint(bytes, tag.end);
      if (v === undefined) return undefined;
      end = v.end;
    } else if (wireType === 1) end = tag.end + 8;
    else if (wireType === 5) end = tag.end + 4;
    else if (wireType === 2) {
      const len = readVarint(bytes, tag.end);
      if (len === undefined || len.value > BigInt(bytes.length)) return undefined;
      valueStart = len.end;
      end = len.end + Number(len.value);
    } else return undefined;
    if (end > bytes.length) return undefined;
    fields.push({ field, wireType, start: at, valueStart, end });
    at = end;
  }
  return fields;
}

const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));
const tagBytes = (field: number, wireType: number): Uint8Array => varint((BigInt(field) << 3n) | BigInt(wireType));

/** Field numbers worth trying: neighbours, unknown ones, the largest legal one, and past it. */
const FIELD_NUMBERS = [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 19, 20, 21, 99, 1000, 19000, 536_870_911, 536_870_912];
const HUGE_LENGTHS = [0x7fffffffn, 0xffffffffn, 1n << 40n, (1n << 63n) - 1n, (1n << 64n) - 1n];
const HUGE_VARINTS = [0xffffffffn, 1n << 32n, (1n << 53n) + 1n, (1n << 63n) - 1n, (1n << 64n) - 1n];

export type MutationKind =
  | "random"
  | "bitflip"
  | "truncate"
  | "field-number"
  | "wire-type"
  | "huge-length"
  | "huge-varint"
  | "huge-count"
  | "splice";

export const MUTATIONS: readonly MutationKind[] = ["random", "bitflip", "truncate", "field-number", "wire-type", "huge-length", "huge-varint", "huge-count", "splice"];

/** One mutation of `bytes` (a valid encoding) of the given kind. */
export function mutate(rng: Rng, bytes: Uint8Array, kind: MutationKind): Uint8Array {
  const fields = parseFields(bytes) ?? [];
  // Descend into a nested message now and then, so deep fields get the same treatment.
  const nested = fields.filter((f) => f.wireType === 2 && f.end > f.valueStart && parseFields(bytes.subarray(f.valueStart, f.end)) !== undefined);
  if (kind !== "random" && nested.length > 0 && rng.next() < 0.4) {
    const f = rng.pick(nested);
    const inner = mutate(rng, bytes.slice(f.valueStart, f.end), kind);
    return concat(bytes.subarray(0, f.start), tagBytes(f.field, 2), varint(BigInt(inner.length)), inner, bytes.subarray(f.end));
  }
  switch (kind) {
    case "random":
      return rng.bytes(rng.pick([0, 1, 2, 5, 16, 64, 256]));
    case "bitflip": {
      const out = Uint8Array.from(bytes);
      if (out.length === 0) return rng.bytes(1);
      for (let n = 1 + rng.int(8); n > 0; n--) {
        const i = rng.int(out.length);
        out[i] = (out[i] ?? 0) ^ (1 << rng.int(8));
      }
      return out;
    }
    case "truncate":
      return bytes.length === 0 ? rng.bytes(1) : bytes.slice(0, rng.int(bytes.length));
    case "field-number":
    case "wire-type": {
      if (fields.length === 0) return concat(tagBytes(rng.pick(FIELD_NUMBERS), rng.int(8)), rng.bytes(rng.int(8)));
      const f = rng.pick(fields);
      const newTag = kind === "field-number" ? tagBytes(rng.pick(FIELD_NUMBERS), f.wireType) : tagBytes(f.field, (f.wireType + 1 + rng.int(7)) % 8);
      const tagEnd = (readVarint(bytes, f.start)?.end ?? f.start + 1);
      return concat(bytes.subarray(0, f.start), newTag, bytes.subarray(tagEnd));
    }
    case "huge-length": {
      const len = fields.filter((f) => f.wireType === 2);
      if (len.length === 0) return concat(bytes, tagBytes(rng.pick(FIELD_NUMBERS), 2), varint(rng.pick(HUGE_LENGTHS)), rng.bytes(rng.int(16)));
      const f = rng.pick(len);
      const tagEnd = readVarint(bytes, f.start)?.end ?? f.start + 1;
      return concat(bytes.subarray(0, tagEnd), varint(rng.pick(HUGE_LENGTHS)), bytes.subarray(f.valueStart));
    }
    case "huge-varint": {
      const vs = fields.filter((f) => f.wireType === 0);
      if (vs.length === 0) return concat(bytes, tagBytes(rng.pick([1, 2, 3, 4, 5]), 0), varint(rng.pick(HUGE_VARINTS)));
      const f = rng.pick(vs);
      return concat(bytes.subarray(0, f.valueStart), varint(rng.pick(HUGE_VARINTS)), bytes.subarray(f.end));
    }
    case "huge-count": {
      // One field repeated many times: a repeated field's count, or a singular one's last-wins.
      if (fields.length === 0) return bytes;
      const f = rng.pick(fields);
      const copies = rng.pick([100, 1000, 5000]);
      const one = bytes.subarray(f.start, f.end);
      return concat(bytes, ...Array.from({ length: copies }, () => one));
    }
    case "splice": {
      const cut = rng.int(bytes.length + 1);
      return concat(bytes.subarray(0, cut), rng.bytes(1 + rng.int(12)), bytes.subarray(cut));
    }
  }
}
