// Training runs as tenants (DESIGN §2.1) with durable state (§2.2). Each run has its own seed manager;
// the verifier (and so the nonce ledger) is shared by all of them. After every call the run's changes
// and the nonces the call registered are committed as one StateChange, and the call answers only
// once that change is durable.
import type { CommandVerifier } from "./command-verifier.js";
import { KasminaError } from "./errors.js";
import type { Clock } from "./ports.js";
import { RunPersistence } from "./run-state-codec.js";
import type { SeedManager } from "./seed-manager.js";
import { NonceTakenError, type NonceEntry, type StateStore } from "./state-store.js";
import type { RunOwnership } from "./run-ownership.js";

/** DESIGN §2.1: 1–128 characters of [A-Za-z0-9._:-]. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

export class TrainingRun {
  private readonly closing = new AbortController();

  constructor(
    readonly id: string,
    readonly manager: SeedManager,
    readonly persistence: RunPersistence,
  ) {}

  /** Aborted when the run is closed: its watch streams end. */
  get closed(): AbortSignal {
    return this.closing.signal;
  }

  /** Wall-clock milliseconds of the last call that changed the run. */
  get lastActivityMs(): number {
    return this.persistence.lastActivityMs;
  }

  /** `reason` (a KasminaError) ends the watchers with that status instead of OK. */
  end(reason?: KasminaError): void {
    this.closing.abort(reason);
  }
}

export interface TrainingRunsOptions {
  store: StateStore;
  clock: Clock;
  defaultRunId: string;
  maxRuns: number;
  verifier: CommandVerifier | undefined;
  /** A new, empty manager for the run (its prefetch port already carrying the run's id). */
  createManager: (runId: string) => SeedManager;
  /**
   * A commit failed: memory is now ahead of the store, so the process must stop and restart from
   * what was committed (main.ts exits; tests record it). The failed call answers UNAVAILABLE.
   */
  onStoreFailure: (error: Error) => void;
}

export class TrainingRuns {
  private readonly runs = new Map<string, TrainingRun>();
  /** Replicated stores: take-overs in flight, so concurrent first calls load a run once. */
  private readonly taking = new Map<string, Promise<TrainingRun>>();
  readonly defaultRunId: string;
  readonly maxRuns: number;

  constructor(private readonly options: TrainingRunsOptions) {
    this.defaultRunId = options.defaultRunId;
    this.maxRuns = options.maxRuns;
    // DESIGN §2.4: a run this replica no longer owns leaves memory at once; its watchers end UNAVAILABLE.
    options.store.ownership?.onLost((runId, reason) => this.evict(runId, `this replica stopped serving training run ${JSON.stringify(runId)}: ${reason}; call again (another replica serves it now)`));
  }

  /**
   * The run a call selects, ready to serve. With a replicated store (etcd) a run not in memory is
   * taken over and loaded first; one owned by another live replica throws RunOwnedElsewhere
   * (UNAVAILABLE naming it). Otherwise the same as open(), synchronously (a watcher subscribes in
   * the same turn as its call).
   */
  take(runId: string = this.defaultRunId): TrainingRun | Promise<TrainingRun> {
    const ownership = this.options.store.ownership;
    if (ownership === undefined) return this.open(runId);
    return this.takeOwned(ownership, runId);
  }

  private async takeOwned(ownership: RunOwnership, runId: string): Promise<TrainingRun> {
    const existing = this.runs.get(runId);
    if (existing !== undefined && ownership.owns(runId)) return existing;
    if (existing !== undefined) this.evict(runId, `this replica stopped serving training run ${JSON.stringify(runId)}`);
    const pending = this.taking.get(runId);
    if (pending !== undefined) return pending;
    if (this.runs.size >= this.maxRuns) this.open(runId); // throws RESOURCE_EXHAUSTED
    const loading = (async () => {
      let items: Map<string, string>;
      try {
        items = await ownership.acquire(runId);
      } catch (error) {
        if (error instanceof KasminaError) throw error;
        throw new KasminaError("unavailable", `training run ${JSON.stringify(runId)} cannot be served now: ${(error as Error).message}`);
      }
      const run = this.make(runId);
      run.persistence.restore(items);
      if (run.manager.republishPending() > 0) await this.commit(run, false);
      return run;
    })();
    this.taking.set(runId, loading);
    try {
      return await loading;
    } finally {
      this.taking.delete(runId);
    }
  }

  get store(): StateStore {
    return this.options.store;
  }

  get size(): number {
    return this.runs.size;
  }

  /** Start-up: every committed run and the nonce ledger come back; pending prefetch is re-published. */
  async restore(): Promise<void> {
    const stored = this.options.store.load();
    for (const [runId, items] of stored.runs) {
      const run = this.make(runId);
      run.persistence.restore(items);
    }
    this.options.verifier?.nonces.restore(stored.nonces);
    for (const run of this.runs.values()) {
      if (run.manager.republishPending() > 0) await this.commit(run, false);
    }
  }

  list(): TrainingRun[] {
    return [...this.runs.values()];
  }

  find(runId: string): TrainingRun | undefined {
    return this.runs.get(runId);
  }

  /** The run a call selects, created by its first call (RESOURCE_EXHAUSTED past KASMINA_MAX_TRAINING_RUNS). */
  open(runId: string = this.defaultRunId): TrainingRun {
    const existing = this.runs.get(runId);
    if (existing !== undefined) return existing;
    if (this.runs.size >= this.maxRuns) {
      throw new KasminaError(
        "resource_exhausted",
        `${this.runs.size} training runs exist, the most KASMINA_MAX_TRAINING_RUNS allows; close one with CloseTrainingRun before starting run ${JSON.stringify(runId)}`,
      );
    }
    return this.make(runId);
  }

  /**
   * Commits what the call changed in `run` plus the nonces it registered, and resolves once durable.
   * A call that changed nothing still waits for earlier changes, so it never reports state that a
   * crash could take back. `activity` stamps the run's last activity (calls that change it).
   */
  async commit(run: TrainingRun | undefined, activity = true, registered?: NonceEntry[]): Promise<void> {
    if (run !== undefined && activity) run.persistence.lastActivityMs = this.options.clock.wallMs();
    const delta = run?.persistence.capture();
    const nonces = registered ?? this.takeNonces();
    const empty = delta === undefined || (delta.puts.size === 0 && delta.deletes.length === 0);
    if (empty && nonces.length === 0) {
      await this.options.store.settled();
      return;
    }
    try {
      await this.options.store.commit({ runId: run?.id ?? this.defaultRunId, puts: delta?.puts ?? new Map(), deletes: delta?.deletes ?? [], nonces });
    } catch (error) {
      if (this.options.store.ownership !== undefined) this.refused(run?.id ?? this.defaultRunId, nonces, error);
      this.failed(error);
    }
  }

  /**
   * A replicated store refused or did not confirm the change: this run's memory is ahead of the
   * store, so it is dropped and reloaded from the store by the next call (it is still this replica's
   * unless ownership was lost). The service keeps running; the call was not applied.
   */
  private refused(runId: string, nonces: readonly { id: string }[], error: unknown): never {
    const message = error instanceof Error ? error.message : String(error);
    this.evict(runId, `training run ${JSON.stringify(runId)} is being reloaded after a refused write; call again`);
    if (error instanceof NonceTakenError) {
      throw new KasminaError("permission_denied", `nonce_replayed: command id ${JSON.stringify(error.nonce.slice(0, 128))} is already in the ledger (accepted earlier, possibly by another replica); it was not applied`);
    }
    // Not taken by anyone as far as we know: the store, not this replica's cache, judges a resend.
    this.options.verifier?.nonces.forget(nonces.map((n) => n.id));
    throw new KasminaError("unavailable", `the state store did not commit this call (${message}); it was not applied, call again`);
  }

  /** Drops the run from memory (not from the store) and ends its watchers with UNAVAILABLE. */
  private evict(runId: string, message: string): void {
    const run = this.runs.get(runId);
    if (run === undefined) return;
    this.runs.delete(runId);
    run.end(new KasminaError("unavailable", message));
  }

  /** Nonces registered since the last take (a call takes its own right after its work, call-run.ts). */
  takeNonces(): NonceEntry[] {
    return this.options.verifier?.nonces.takeRegistered() ?? [];
  }

  /** DESIGN §2.1 CloseTrainingRun: retires every seed, ends the watchers, deletes the run's state. */
  async close(runId: string): Promise<number> {
    if (this.options.store.ownership !== undefined && !this.runs.has(runId)) {
      const taken = await this.take(runId);
      // Taking a run that exists nowhere creates it empty: that is NOT_FOUND, and the run is let go.
      if (taken.persistence.lastActivityMs === 0 && taken.manager.seedIds().length === 0) {
        this.runs.delete(runId);
        await this.options.store.commit({ runId, puts: new Map(), deletes: [], dropRun: true, nonces: [] }).catch(() => undefined);
      }
    }
    const run = this.runs.get(runId);
    if (run === undefined) throw new KasminaError("not_found", `training run ${JSON.stringify(runId.slice(0, 128))} does not exist`);
    const retired = run.manager.retireAll();
    run.end();
    this.runs.delete(runId);
    try {
      await this.options.store.commit({ runId, puts: new Map(), deletes: [], dropRun: true, nonces: this.options.verifier?.nonces.takeRegistered() ?? [] });
    } catch (error) {
      this.failed(error);
    }
    return retired;
  }

  private failed(error: unknown): never {
    const failure = error instanceof Error ? error : new Error(String(error));
    this.options.onStoreFailure(failure);
    throw new KasminaError("unavailable", `the state store could not commit this call (${failure.message}); it was not applied`);
  }

  private make(runId: string): TrainingRun {
    const manager = this.options.createManager(runId);
    const run = new TrainingRun(runId, manager, new RunPersistence(manager, this.options.clock));
    this.runs.set(runId, run);
    return run;
  }
}
