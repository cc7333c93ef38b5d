// Bounds on every string and count a client sends (DESIGN §2.0), checked before anything else
// looks at a request: an oversized command is refused before verification, so it never reaches
// the event queue, and no error message repeats more than MAX_QUOTED_CHARS of client input.
import { MAX_ID_CHARS, MAX_QUOTED_CHARS, type KasminaLimits } from "../config.js";
import { invalidArgument, resourceExhausted } from "../kasmina/errors.js";
import type { AdaptationCommand } from "../leyline.js";

export type CommandLimits = Pick<KasminaLimits, "maxAnnotations" | "maxAnnotationBytes">;

export const DEFAULT_COMMAND_LIMITS: CommandLimits = { maxAnnotations: 64, maxAnnotationBytes: 16 * 1024 };

/** Client text for an error message: JSON-quoted, cut to MAX_QUOTED_CHARS characters. */
export function quote(text: string): string {
  if (text.length <= MAX_QUOTED_CHARS) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, MAX_QUOTED_CHARS))}… (${text.length} characters)`;
}

/** An id-like string: at most MAX_ID_CHARS characters (INVALID_ARGUMENT naming the field). */
export function checkIdLength(value: string, field: string): string {
  if (value.length > MAX_ID_CHARS) {
    throw invalidArgument(`${field} is ${value.length} characters, over the limit of ${MAX_ID_CHARS}: ${quote(value)}`);
  }
  return value;
}

const utf8Bytes = (text: string): number => Buffer.byteLength(text, "utf8");

/** UTF-8 bytes of a Struct's keys and string values, as a bound on what the payload holds. */
function structBytes(value: unknown, depth = 0): number {
  if (depth > 64) throw invalidArgument("rollback_payload nests deeper than 64 levels");
  if (typeof value === "string") return utf8Bytes(value);
  if (value === null || typeof value !== "object") return 8;
  if (Array.isArray(value)) return value.reduce((sum: number, item: unknown) => sum + structBytes(item, depth + 1), 0);
  let sum = 0;
  for (const key of Object.keys(value)) sum += utf8Bytes(key) + structBytes((value as Record<string, unknown>)[key], depth + 1);
  return sum;
}

function checkMapKeys(map: ReadonlyMap<string, unknown>, field: string, limits: CommandLimits): void {
  if (map.size > limits.maxAnnotations) {
    throw invalidArgument(`${field} has ${map.size} entries, over the limit of ${limits.maxAnnotations} (KASMINA_MAX_ANNOTATIONS)`);
  }
  for (const key of map.keys()) checkIdLength(key, `${field} key`);
}

/**
 * The command's ids are at most MAX_ID_CHARS characters; its annotations at most maxAnnotations
 * entries; its free text (annotation keys and values, issued_by, the breaker rationale and the
 * rollback payload) at most maxAnnotationBytes UTF-8 bytes. INVALID_ARGUMENT otherwise.
 */
export function checkCommandBounds(command: AdaptationCommand, limits: CommandLimits = DEFAULT_COMMAND_LIMITS): void {
  checkIdLength(command.commandId, "command_id");
  checkIdLength(command.targetSeedId, "target_seed_id");
  const payload = command.payload;
  if (payload?.$case === "seedOperation") {
    checkIdLength(payload.value.blueprintId, "seed_operation.blueprint_id");
    checkMapKeys(payload.value.parameters, "seed_operation.parameters", limits);
  } else if (payload?.$case === "optimizerAdjustment") {
    checkIdLength(payload.value.optimizerId, "optimizer_adjustment.optimizer_id");
    checkMapKeys(payload.value.hyperparameters, "optimizer_adjustment.hyperparameters", limits);
  }
  if (command.annotations.size > limits.maxAnnotations) {
    throw invalidArgument(`annotations has ${command.annotations.size} entries, over the limit of ${limits.maxAnnotations} (KASMINA_MAX_ANNOTATIONS)`);
  }
  let bytes = utf8Bytes(command.issuedBy);
  for (const [key, value] of command.annotations) bytes += utf8Bytes(key) + utf8Bytes(value);
  if (payload?.$case === "circuitBreaker") bytes += utf8Bytes(payload.value.rationale);
  if (payload?.$case === "rollbackPayload") bytes += structBytes(payload.value ?? {});
  if (bytes > limits.maxAnnotationBytes) {
    throw invalidArgument(
      `the command's annotations, issued_by, rationale and rollback payload take ${bytes} bytes, over the limit of ${limits.maxAnnotationBytes} (KASMINA_MAX_ANNOTATION_BYTES)`,
    );
  }
}

/** A RegisterHost/RegisterTeacher list longer than the limit is refused whole (RESOURCE_EXHAUSTED). */
export function checkParameterCount(count: number, field: string, limit: number): void {
  if (count > limit) {
    throw resourceExhausted(`${field} lists ${count} entries, over the limit of ${limit} (KASMINA_MAX_REGISTERED_PARAMETERS)`);
  }
}
