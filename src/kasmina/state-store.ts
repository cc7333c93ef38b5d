// The durable state port (DESIGN §2.2, §2.4), owned by the domain; implementations live in src/infra
// (SQLite, memory; etcd later). The unit of durability is one StateChange: one acknowledged call's
// writes to one run plus the nonces it registered, committed as one transaction before the call
// answers. Keys are per run and per item (run meta, one key per seed, rollback record, queued event,
// unsent packet), so a change is small and an etcd implementation can wrap each change in one
// transaction guarded by the run's ownership key (its fencing condition). The nonce ledger is one
// per service, each entry put-if-absent with its own wall-clock expiry.
import type { RunOwnership } from "./run-ownership.js";

export interface NonceEntry {
  readonly id: string;
  /** Wall-clock milliseconds after which the entry may be forgotten. */
  readonly expiresAtMs: number;
}

export interface StateChange {
  readonly runId: string;
  /** Item keys within the run → JSON text. */
  readonly puts: ReadonlyMap<string, string>;
  readonly deletes: readonly string[];
  /** Deletes every item of the run first (CloseTrainingRun). */
  readonly dropRun?: boolean;
  /** Put-if-absent: a live entry with the same id fails the whole change with NonceTakenError. */
  readonly nonces: readonly NonceEntry[];
}

export interface StoredState {
  /** Run id → item key → JSON text. */
  readonly runs: Map<string, Map<string, string>>;
  /** Live entries only. */
  readonly nonces: NonceEntry[];
}

export interface StateStore {
  /** For GetStatus.state_store: `sqlite:PATH`, `memory` or `etcd:ENDPOINTS` (never a password). */
  readonly description: string;
  /** Everything committed so far (start-up). */
  load(): StoredState;
  /** Resolves once the change is durable; changes commit in the order they were submitted. */
  commit(change: StateChange): Promise<void>;
  /** Resolves once every change submitted so far is durable (or has failed). */
  settled(): Promise<void>;
  close(): Promise<void>;
  /**
   * Replicated stores only (etcd, DESIGN §2.4): runs are not in load() but taken over one at a time
   * through acquire(), and served only while owned. Undefined for SQLite and memory.
   */
  readonly ownership?: RunOwnership;
}

/** A nonce another call (or replica) already holds: the change was not applied. */
export class NonceTakenError extends Error {
  constructor(readonly nonce: string) {
    super(`nonce ${JSON.stringify(nonce.slice(0, 128))} is already in the ledger`);
    this.name = "NonceTakenError";
  }
}

/** The state file cannot be used (corrupt, unwritable, newer schema): start-up fails naming it. */
export class StateStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StateStoreError";
  }
}

/** Name of the histogram every implementation records once per committed transaction (seconds). */
export const STATE_WRITES_METRIC = "kasmina.state.writes";
