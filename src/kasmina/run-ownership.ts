// Run ownership for replicated state stores (DESIGN §2.4). With KASMINA_STATE=etcd several replicas
// share the runs, and each run is served by the one replica holding its ownership key. This is the
// part of the state store port that only a replicated store implements (StateStore.ownership): the
// domain asks for a run when a call selects it, learns when it lost one, and never reads a run's
// items except through acquire(). SQLite and memory leave it undefined and keep loading everything
// at start-up with load().
import { KasminaError } from "./errors.js";

export interface RunOwnership {
  /**
   * Takes ownership of the run (or confirms it is still this replica's) and returns its committed
   * items, read after the ownership key was written. Throws RunOwnedElsewhere when another live
   * replica owns it, StoreUnreachableError when the store cannot be reached.
   */
  acquire(runId: string): Promise<Map<string, string>>;
  /** True while this replica owns the run: checked against the keep-alive deadline on the monotonic clock. */
  owns(runId: string): boolean;
  /** Called once per run this replica stops owning (lease lost, keep-alive deadline passed, fenced write refused). */
  onLost(listener: (runId: string, reason: string) => void): void;
  /** Called when the store becomes unreachable (false) or reachable again (true). */
  onReachable(listener: (reachable: boolean) => void): void;
  readonly reachable: boolean;
}

/** Trailing metadata key naming the replica that owns the run (KASMINA_ADVERTISE_ADDRESS). */
export const OWNER_METADATA_KEY = "kasmina-owner";

/** UNAVAILABLE with `kasmina-owner: HOST:PORT`: the client should send the call there. */
export class RunOwnedElsewhere extends KasminaError {
  constructor(
    readonly runId: string,
    readonly owner: string,
  ) {
    super("unavailable", `training run ${JSON.stringify(runId)} is served by the replica at ${owner}; send the call there (trailing metadata ${OWNER_METADATA_KEY})`);
    this.name = "RunOwnedElsewhere";
  }
}

/** A write was refused because this replica no longer owns the run: nothing of it was applied. */
export class OwnershipLostError extends Error {
  constructor(
    readonly runId: string,
    reason: string,
  ) {
    super(`this replica no longer owns training run ${JSON.stringify(runId)} (${reason})`);
    this.name = "OwnershipLostError";
  }
}

/** The store did not complete the request (unreachable, or it refused the change as too large): a change may or may not have been applied, so the run is reloaded. */
export class StoreUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreUnreachableError";
  }
}
