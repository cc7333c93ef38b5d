// The message-bus port of kernel prefetch (spec §14, DESIGN §2 "Bus (Oona-compatible)").
// Both implementations (in-process and Redis Streams) carry the same entries: field `payload` is a
// serialized leyline.BusEnvelope and, when a secret is configured, field `signature` is the base64
// HMAC-SHA256 of exactly those bytes keyed by the UTF-8 secret. Verification lives here, once, so
// the two buses cannot drift apart on what they accept.
import { createHmac, timingSafeEqual } from "node:crypto";
import { BusEnvelope } from "../leyline.js";

/** Oona stream names (binding: other services publish and read them). */
export const PREFETCH_STREAMS = {
  requests: "oona.kernels.requests",
  ready: "oona.kernels.ready",
  errors: "oona.kernels.errors",
} as const;

/** Block timeout of one consumer read (spec §14.1). */
export const CONSUMER_BLOCK_MS = 500;

/**
 * Why an entry was acknowledged and dropped instead of handled. The signature reasons come from the
 * bus; the others from the reader that found the envelope unusable for its stream.
 */
export type RejectReason =
  | "missing_signature"
  | "invalid_signature"
  | "missing_payload"
  | "malformed_envelope"
  | "unexpected_message_type"
  | "malformed_message";

export interface RejectedMessage {
  stream: string;
  entryId: string;
  reason: RejectReason;
  detail?: string;
}

export type RejectionListener = (rejection: RejectedMessage) => void;

/** A raw stream entry as stored: field name → value bytes. */
export interface StreamEntry {
  id: string;
  fields: ReadonlyMap<string, Buffer>;
}

/** A verified entry handed to a consumer's handler. */
export interface BusMessage {
  stream: string;
  entryId: string;
  envelope: BusEnvelope;
}

/** Returning normally acknowledges the entry; throwing leaves it pending so it is delivered again. */
export type MessageHandler = (message: BusMessage) => void | Promise<void>;

/** `closed` means the consumer was closed (by its owner or by the bus) and will deliver nothing more. */
export type PollResult = number | "closed";

export interface BusConsumer {
  readonly stream: string;
  /**
   * One read round: re-read this consumer's own unacknowledged entries after a failure, reclaim
   * stale entries of crashed consumers, else block up to `blockMs` for new ones; hand each to
   * `handler` and acknowledge it only after the handler returned. Resolves to the number of
   * entries taken off the stream, or `closed`; rejects on a transport or handler failure.
   */
  poll(handler: MessageHandler, blockMs?: number): Promise<PollResult>;
  /** Ends the consumer: interrupts a blocked read, lets a running handler finish, then disconnects. */
  close(): Promise<void>;
}

export interface ConsumerOptions {
  stream: string;
  /** Consumer group; created (MKSTREAM, from the end of the stream) when missing. */
  group: string;
  /** Consumer name inside the group. */
  consumer: string;
  /** Entries pending on another consumer for at least this long are reclaimed (default 30 s). */
  claimMinIdleMs?: number;
  /** Entries rejected for a missing or bad signature or an unreadable payload. */
  onRejected?: RejectionListener;
}

export interface PrefetchBus {
  /** Appends one entry; resolves to its id. */
  publish(stream: string, envelope: BusEnvelope): Promise<string>;
  /** Creates the group if missing (from the end of the stream); an existing group is kept as is. */
  ensureGroup(stream: string, group: string): Promise<void>;
  consumer(options: ConsumerOptions): BusConsumer;
  /** Closes every consumer it made and releases its connections; later publishes fail. */
  close(): Promise<void>;
}

export const DEFAULT_CLAIM_MIN_IDLE_MS = 30_000;

/** base64 HMAC-SHA256 of the envelope bytes, keyed by the UTF-8 secret. */
export function signEnvelopeBytes(bytes: Uint8Array, secret: string): string {
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(bytes).digest("base64");
}

/** The fields of the entry that carries `envelope` (field order as Oona writes them). */
export function entryFields(envelope: BusEnvelope, secret: string | undefined): Array<[string, Buffer]> {
  const bytes = Buffer.from(BusEnvelope.encode(envelope).finish());
  const fields: Array<[string, Buffer]> = [["payload", bytes]];
  if (secret !== undefined) fields.push(["signature", Buffer.from(signEnvelopeBytes(bytes, secret), "utf8")]);
  return fields;
}

export type OpenedEntry = { envelope: BusEnvelope } | { reason: RejectReason; detail: string };

/** Verifies (when a secret is set) and decodes one entry. Never throws. */
export function openEntry(entry: StreamEntry, secret: string | undefined): OpenedEntry {
  const payload = entry.fields.get("payload");
  if (payload === undefined) return { reason: "missing_payload", detail: "entry has no payload field" };
  if (secret !== undefined) {
    const signature = entry.fields.get("signature");
    if (signature === undefined || signature.length === 0) {
      return { reason: "missing_signature", detail: "entry has no signature field" };
    }
    // Compare decoded MACs in constant time; a malformed base64 string simply fails to match.
    const expected = Buffer.from(signEnvelopeBytes(payload, secret), "base64");
    const given = Buffer.from(signature.toString("utf8"), "base64");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return { reason: "invalid_signature", detail: "signature does not match the payload" };
    }
  }
  try {
    return { envelope: BusEnvelope.decode(payload) };
  } catch (error) {
    return { reason: "malformed_envelope", detail: errorMessage(error) };
  }
}

export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

export function errorMessage(value: unknown): string {
  return value instanceof Error ? value.message : String(value);
}
