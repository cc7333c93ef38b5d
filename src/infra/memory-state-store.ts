// KASMINA_STATE=memory: the state store contract without a file. Nothing survives the process; it
// exists so one suite runs against both stores and so a throwaway service needs no disk.
import { NonceTakenError, STATE_WRITES_METRIC, type StateChange, type StateStore, type StoredState } from "../kasmina/state-store.js";
import type { Histogram, MetricsPort } from "../kasmina/ports.js";
import { GroupCommit } from "./group-commit.js";

export class MemoryStateStore implements StateStore {
  readonly description = "memory";
  private readonly runs = new Map<string, Map<string, string>>();
  private readonly nonces = new Map<string, number>();
  private readonly group: GroupCommit;
  private readonly writes: Histogram;

  constructor(
    metrics: MetricsPort,
    private readonly wallMs: () => number = Date.now,
  ) {
    this.writes = metrics.histogram(STATE_WRITES_METRIC, "Duration of one committed state-store transaction", "s");
    this.group = new GroupCommit((changes) => this.apply(changes));
  }

  load(): StoredState {
    const now = this.wallMs();
    return {
      runs: new Map([...this.runs].map(([id, items]) => [id, new Map(items)])),
      nonces: [...this.nonces].filter(([, expiry]) => expiry > now).map(([id, expiresAtMs]) => ({ id, expiresAtMs })),
    };
  }

  commit(change: StateChange): Promise<void> {
    return this.group.submit(change);
  }

  settled(): Promise<void> {
    return this.group.settled();
  }

  async close(): Promise<void> {
    await this.group.settled();
  }

  private apply(changes: readonly StateChange[]): (Error | undefined)[] {
    const started = performance.now();
    const now = this.wallMs();
    const results = changes.map((change) => {
      const taken = change.nonces.find((n) => (this.nonces.get(n.id) ?? Number.NEGATIVE_INFINITY) > now);
      if (taken !== undefined) return new NonceTakenError(taken.id);
      for (const n of change.nonces) this.nonces.set(n.id, n.expiresAtMs);
      if (change.dropRun === true) this.runs.delete(change.runId);
      let items = this.runs.get(change.runId);
      if (items === undefined && change.puts.size > 0) {
        items = new Map();
        this.runs.set(change.runId, items);
      }
      for (const key of change.deletes) items?.delete(key);
      for (const [key, value] of change.puts) items?.set(key, value);
      return undefined;
    });
    // Entries share one TTL, so insertion order is expiry order: stop at the first live one.
    for (const [id, expiry] of this.nonces) {
      if (expiry > now) break;
      this.nonces.delete(id);
    }
    this.writes.record((performance.now() - started) / 1000, { "kasmina.state.store": "memory" });
    return results;
  }
}
