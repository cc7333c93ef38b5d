// Deterministic encoding of an AdaptationCommand, byte-identical to Python protobuf's
// SerializeToString(deterministic=True): fields in number order, proto3 defaults omitted, a set
// oneof member always emitted, and every map (annotations, seed_operation.parameters,
// optimizer hyperparameters, Struct fields) sorted by key in UTF-8 byte order. Map entries always
// carry both key and value, as upb writes them. The `signature` annotation is left out: these are
// the bytes that are signed.
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import type { AdaptationCommand, Timestamp } from "../leyline.js";

const utf8 = (text: string): Buffer => Buffer.from(text, "utf8");

/** Keys in UTF-8 byte order (code point order), not JavaScript's UTF-16 order. */
function sortedKeys(keys: Iterable<string>): string[] {
  return [...keys]
    .map((key) => ({ key, bytes: utf8(key) }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    .map((entry) => entry.key);
}

const LEN = 2;
const tag = (field: number, wireType: number): number => (field << 3) | wireType;

function stringMap(writer: BinaryWriter, field: number, map: ReadonlyMap<string, string>, skip?: string): void {
  for (const key of sortedKeys(map.keys())) {
    if (key === skip) continue;
    writer.uint32(tag(field, LEN)).fork().uint32(tag(1, LEN)).string(key).uint32(tag(2, LEN)).string(map.get(key) ?? "").join();
  }
}

function floatMap(writer: BinaryWriter, field: number, map: ReadonlyMap<string, number>): void {
  for (const key of sortedKeys(map.keys())) {
    writer.uint32(tag(field, LEN)).fork().uint32(tag(1, LEN)).string(key).uint32(tag(2, 5)).float(map.get(key) ?? 0).join();
  }
}

function timestamp(writer: BinaryWriter, field: number, value: Timestamp): void {
  writer.uint32(tag(field, LEN)).fork();
  if (value.seconds !== 0n) writer.uint32(tag(1, 0)).int64(value.seconds);
  if (value.nanos !== 0) writer.uint32(tag(2, 0)).int32(value.nanos);
  writer.join();
}

// google.protobuf.Value, from the plain JavaScript value ts-proto unwraps it to. `undefined` is a
// Value with no kind set: upb writes it as an empty message, so nothing goes inside it here.
function value(writer: BinaryWriter, v: unknown): void {
  if (v === undefined) return;
  if (v === null) writer.uint32(tag(1, 0)).int32(0);
  else if (typeof v === "number") writer.uint32(tag(2, 1)).double(v);
  else if (typeof v === "string") writer.uint32(tag(3, LEN)).string(v);
  else if (typeof v === "boolean") writer.uint32(tag(4, 0)).bool(v);
  else if (Array.isArray(v)) {
    writer.uint32(tag(6, LEN)).fork();
    for (const item of v) {
      writer.uint32(tag(1, LEN)).fork();
      value(writer, item);
      writer.join();
    }
    writer.join();
  } else if (typeof v === "object") {
    writer.uint32(tag(5, LEN)).fork();
    struct(writer, v as Record<string, unknown>);
    writer.join();
  }
}

function struct(writer: BinaryWriter, fields: Readonly<Record<string, unknown>>): void {
  for (const key of sortedKeys(Object.keys(fields))) {
    writer.uint32(tag(1, LEN)).fork().uint32(tag(1, LEN)).string(key).uint32(tag(2, LEN)).fork();
    value(writer, fields[key]);
    writer.join().join();
  }
}

export function canonicalCommandBytes(command: AdaptationCommand, omitAnnotation = "signature"): Uint8Array {
  const w = new BinaryWriter();
  if (command.version !== 0) w.uint32(tag(1, 0)).uint32(command.version);
  if (command.commandId !== "") w.uint32(tag(2, LEN)).string(command.commandId);
  if (command.commandType !== 0) w.uint32(tag(3, 0)).int32(command.commandType);
  if (command.targetSeedId !== "") w.uint32(tag(4, LEN)).string(command.targetSeedId);
  if (command.executionDeadlineMs !== 0) w.uint32(tag(5, 0)).uint32(command.executionDeadlineMs);
  if (command.issuedAt !== undefined) timestamp(w, 6, command.issuedAt);
  if (command.issuedBy !== "") w.uint32(tag(7, LEN)).string(command.issuedBy);
  const payload = command.payload;
  switch (payload?.$case) {
    case "seedOperation": {
      const op = payload.value;
      w.uint32(tag(10, LEN)).fork();
      if (op.operation !== 0) w.uint32(tag(1, 0)).int32(op.operation);
      if (op.blueprintId !== "") w.uint32(tag(2, LEN)).string(op.blueprintId);
      floatMap(w, 3, op.parameters);
      w.join();
      break;
    }
    case "optimizerAdjustment": {
      const adj = payload.value;
      w.uint32(tag(11, LEN)).fork();
      if (adj.optimizerId !== "") w.uint32(tag(1, LEN)).string(adj.optimizerId);
      floatMap(w, 2, adj.hyperparameters);
      w.join();
      break;
    }
    case "circuitBreaker": {
      const cb = payload.value;
      w.uint32(tag(12, LEN)).fork();
      if (cb.desiredState !== 0) w.uint32(tag(1, 0)).int32(cb.desiredState);
      if (cb.rationale !== "") w.uint32(tag(2, LEN)).string(cb.rationale);
      w.join();
      break;
    }
    case "rollbackPayload": {
      w.uint32(tag(13, LEN)).fork();
      struct(w, (payload.value ?? {}) as Record<string, unknown>);
      w.join();
      break;
    }
    case undefined:
      break;
  }
  stringMap(w, 20, command.annotations, omitAnnotation);
  return w.finish();
}
