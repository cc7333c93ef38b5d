// Splits gradients into ReportGradients-style chunks in several ways.

import { GradientSide, seededRandom, type GradientChunk, type ObserverSide, type RandomSource } from "../../src/isolation/index.js";

export type Chunking = "one" | "fixed7" | "random";

export const CHUNKINGS: readonly Chunking[] = ["one", "fixed7", "random"];

export const WIRE_SIDE: Readonly<Record<ObserverSide, number>> = { host: GradientSide.HOST, seed: GradientSide.SEED };

function bounds(numel: number, chunking: Chunking, random: RandomSource): number[] {
  if (numel === 0) return [0, 0];
  const cuts = [0];
  if (chunking === "fixed7") {
    for (let at = 7; at < numel; at += 7) cuts.push(at);
  } else if (chunking === "random") {
    for (let at = 0; ; ) {
      at += 1 + Math.floor(random() * Math.max(1, numel / 3));
      if (at >= numel) break;
      cuts.push(at);
    }
  }
  cuts.push(numel);
  return cuts;
}

/** Unaligned little-endian bytes for the same values (exercises the one-copy path). */
function unalignedBytes(values: Float32Array): Uint8Array {
  const raw = new Uint8Array(values.byteLength + 1);
  raw.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 1);
  return raw.subarray(1);
}

/** Aligned bytes viewing a copy (the ts-proto decoded case). */
function alignedBytes(values: Float32Array): Uint8Array {
  const copy = values.slice();
  return new Uint8Array(copy.buffer);
}

export interface Gradient {
  readonly side: ObserverSide;
  readonly key: string;
  readonly values: Float32Array;
}

/**
 * Chunks for every gradient. "random" also shuffles chunk order across all gradients and mixes
 * value encodings (Float32Array, aligned bytes, unaligned bytes).
 */
export function chunksFor(gradients: readonly Gradient[], chunking: Chunking, seed: number): GradientChunk[] {
  const random = seededRandom(seed);
  const out: GradientChunk[] = [];
  for (const g of gradients) {
    const cuts = bounds(g.values.length, chunking, random);
    for (let i = 0; i + 1 < cuts.length; i++) {
      const slice = g.values.subarray(cuts[i], cuts[i + 1]);
      const encoding = chunking === "random" ? Math.floor(random() * 3) : 0;
      const values = encoding === 0 ? slice : encoding === 1 ? alignedBytes(slice) : unalignedBytes(slice);
      const numel = random() < 0.5 ? g.values.length : BigInt(g.values.length);
      out.push({ paramKey: g.key, side: WIRE_SIDE[g.side], numel, offset: cuts[i], values });
    }
  }
  if (chunking === "random") {
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
  }
  return out;
}
