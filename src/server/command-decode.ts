// ApplyCommandRequest decoding with google.protobuf.Struct read as data. ts-proto unwraps a Struct
// into a plain object by assignment, so a `__proto__` key sets the object's prototype instead of
// becoming a field, and the signature a Python sender made over that key can never verify. The
// rollback payload is therefore decoded again here from the wire: every key is an own property,
// and an empty Value (no kind set) stays `undefined`, which the canonical encoding writes as upb
// does (an empty message).
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ApplyCommandRequest } from "../../generated/esper/kasmina/v1/kasmina.js";
import { AdaptationCommand } from "../leyline.js";

type JsonValue = null | number | string | boolean | undefined | JsonValue[] | { [key: string]: JsonValue };

/** Recursion bound, as ts-proto's decoder has. */
const MAX_DEPTH = 100;

function setKey(object: Record<string, JsonValue>, key: string, value: JsonValue): void {
  // defineProperty makes `__proto__` an own, enumerable property rather than the prototype.
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

function readStruct(bytes: Uint8Array, depth: number): Record<string, JsonValue> {
  if (depth > MAX_DEPTH) throw new Error("protobuf decode recursion limit exceeded");
  const reader = new BinaryReader(bytes);
  const out: Record<string, JsonValue> = {};
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field !== 1 || wire !== WireType.LengthDelimited) {
      reader.skip(wire);
      continue;
    }
    const entry = new BinaryReader(reader.bytes());
    let key = "";
    let value: JsonValue = undefined;
    while (entry.pos < entry.len) {
      const [f, w] = entry.tag();
      if (f === 1 && w === WireType.LengthDelimited) key = entry.string();
      else if (f === 2 && w === WireType.LengthDelimited) value = readValue(entry.bytes(), depth + 1);
      else entry.skip(w);
    }
    setKey(out, key, value);
  }
  return out;
}

function readList(bytes: Uint8Array, depth: number): JsonValue[] {
  if (depth > MAX_DEPTH) throw new Error("protobuf decode recursion limit exceeded");
  const reader = new BinaryReader(bytes);
  const out: JsonValue[] = [];
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field === 1 && wire === WireType.LengthDelimited) out.push(readValue(reader.bytes(), depth + 1));
    else reader.skip(wire);
  }
  return out;
}

/** A google.protobuf.Value: the last kind on the wire wins; none ⇒ undefined (an empty Value). */
function readValue(bytes: Uint8Array, depth: number): JsonValue {
  if (depth > MAX_DEPTH) throw new Error("protobuf decode recursion limit exceeded");
  const reader = new BinaryReader(bytes);
  let value: JsonValue = undefined;
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field === 1 && wire === WireType.Varint) {
      reader.int32();
      value = null;
    } else if (field === 2 && wire === WireType.Bit64) value = reader.double();
    else if (field === 3 && wire === WireType.LengthDelimited) value = reader.string();
    else if (field === 4 && wire === WireType.Varint) value = reader.bool();
    else if (field === 5 && wire === WireType.LengthDelimited) value = readStruct(reader.bytes(), depth + 1);
    else if (field === 6 && wire === WireType.LengthDelimited) value = readList(reader.bytes(), depth + 1);
    else reader.skip(wire);
  }
  return value;
}

/** The bytes of the last occurrence of a length-delimited field, as ts-proto's "last one wins". */
function lastField(bytes: Uint8Array, number: number): Uint8Array | undefined {
  const reader = new BinaryReader(bytes);
  let found: Uint8Array | undefined;
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field === number && wire === WireType.LengthDelimited) found = reader.bytes();
    else reader.skip(wire);
  }
  return found;
}

/** The rollback payload read again from the command's own bytes (every key an own property). */
function rereadRollbackPayload(command: AdaptationCommand, bytes: Uint8Array): AdaptationCommand {
  if (command.payload?.$case === "rollbackPayload") {
    const struct = lastField(bytes, 13);
    command.payload = { $case: "rollbackPayload", value: struct === undefined ? {} : readStruct(struct, 1) };
  }
  return command;
}

export function decodeAdaptationCommand(bytes: Uint8Array): AdaptationCommand {
  return rereadRollbackPayload(AdaptationCommand.decode(bytes), bytes);
}

export function decodeApplyCommandRequest(bytes: Uint8Array): ApplyCommandRequest {
  const request = ApplyCommandRequest.decode(bytes);
  const commandBytes = lastField(bytes, 1);
  if (request.command !== undefined && commandBytes !== undefined) rereadRollbackPayload(request.command, commandBytes);
  return request;
}
