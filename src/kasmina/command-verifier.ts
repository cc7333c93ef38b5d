// Command verification (spec §6 with DESIGN decision 18): signature, then command id, then
// freshness, and only then the nonce, so a stale or future command does not burn its id. The
// nonce ledger is bounded and fails closed when full.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { AdaptationCommand } from "../leyline.js";
import { canonicalCommandBytes } from "./canonical-command.js";
import type { Clock } from "./ports.js";

export type RejectionReason =
  | "missing_signature"
  | "invalid_signature"
  | "missing_command_id"
  | "missing_timestamp"
  | "issued_in_future"
  | "stale_command"
  | "nonce_replayed"
  | "nonce_ledger_full";

export type Verdict = { accepted: true } | { accepted: false; reason: RejectionReason };

/**
 * Replay protection keyed by command id, TTL on the monotonic clock. All entries share one TTL and
 * the clock never goes back, so insertion order is expiry order: purging walks from the front and
 * stops at the first live entry (amortised O(1) per registration).
 */
export class NonceLedger {
  private readonly expiries = new Map<string, number>();
  /** Registered since the last takeRegistered(): the state store commits them with the call. */
  private registered: string[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly ttlSeconds: number,
    readonly capacity: number,
  ) {}

  get size(): number {
    return this.expiries.size;
  }

  register(nonce: string): "ok" | "nonce_replayed" | "nonce_ledger_full" {
    const now = this.clock.monotonic();
    for (const [key, expiry] of this.expiries) {
      if (expiry > now) break;
      this.expiries.delete(key);
    }
    const expiry = this.expiries.get(nonce);
    if (expiry !== undefined && expiry > now) return "nonce_replayed";
    if (this.expiries.size >= this.capacity) return "nonce_ledger_full";
    this.expiries.set(nonce, now + this.ttlSeconds);
    this.registered.push(nonce);
    return "ok";
  }

  /** Entries registered since the last call, with wall-clock expiries (DESIGN §2.2), for the state store. */
  takeRegistered(): { id: string; expiresAtMs: number }[] {
    if (this.registered.length === 0) return [];
    const now = this.clock.monotonic();
    const wall = this.clock.wallMs();
    const out = this.registered.map((id) => ({ id, expiresAtMs: wall + ((this.expiries.get(id) ?? now) - now) * 1000 }));
    this.registered = [];
    return out;
  }

  /**
   * Forgets entries whose commit failed without an answer (a replicated store): the store, not this
   * cache, decides whether they were taken, so a resent command is judged by the store.
   */
  forget(ids: Iterable<string>): void {
    for (const id of ids) this.expiries.delete(id);
  }

  /** Puts back entries saved before a restart; expired ones are skipped. Oldest expiry first keeps the purge order. */
  restore(entries: Iterable<{ id: string; expiresAtMs: number }>): void {
    const now = this.clock.monotonic();
    const wall = this.clock.wallMs();
    const live = [...entries].filter((e) => e.expiresAtMs > wall).sort((a, b) => a.expiresAtMs - b.expiresAtMs);
    for (const e of live) this.expiries.set(e.id, now + (e.expiresAtMs - wall) / 1000);
  }
}

export interface VerifierOptions {
  secret: string;
  clock: Clock;
  nonceTtlSeconds?: number;
  freshnessWindowSeconds?: number;
  futureSkewSeconds?: number;
  maxNonces?: number;
}

export function signCommand(command: AdaptationCommand, secret: string): string {
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(canonicalCommandBytes(command)).digest("base64");
}

export class CommandVerifier {
  private readonly secret: Buffer;
  private readonly clock: Clock;
  private readonly freshnessMs: number;
  private readonly skewMs: number;
  readonly nonces: NonceLedger;

  constructor(options: VerifierOptions) {
    this.secret = Buffer.from(options.secret, "utf8");
    this.clock = options.clock;
    this.freshnessMs = (options.freshnessWindowSeconds ?? 60) * 1000;
    this.skewMs = (options.futureSkewSeconds ?? 5) * 1000;
    this.nonces = new NonceLedger(options.clock, options.nonceTtlSeconds ?? 300, options.maxNonces ?? 1_000_000);
  }

  verify(command: AdaptationCommand): Verdict {
    const signature = command.annotations.get("signature");
    if (signature === undefined || signature === "") return { accepted: false, reason: "missing_signature" };
    const expected = createHmac("sha256", this.secret).update(canonicalCommandBytes(command)).digest("base64");
    const presented = Buffer.from(signature, "utf8");
    // Constant time over equal lengths; a length mismatch reveals only the public MAC size.
    if (presented.length !== expected.length || !timingSafeEqual(presented, Buffer.from(expected, "utf8"))) {
      return { accepted: false, reason: "invalid_signature" };
    }
    if (command.commandId === "") return { accepted: false, reason: "missing_command_id" };
    const issued = command.issuedAt;
    if (issued === undefined) return { accepted: false, reason: "missing_timestamp" };
    const issuedMs = Number(issued.seconds) * 1000 + issued.nanos / 1e6;
    const now = this.clock.wallMs();
    if (issuedMs > now + this.skewMs) return { accepted: false, reason: "issued_in_future" };
    if (now - issuedMs > this.freshnessMs) return { accepted: false, reason: "stale_command" };
    const nonce = this.nonces.register(command.commandId);
    return nonce === "ok" ? { accepted: true } : { accepted: false, reason: nonce };
  }
}
