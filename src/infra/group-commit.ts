// Group commit (DESIGN §2.2, issue 11): changes submitted while a transaction is being written wait
// for the next one and all of them share it, so N concurrent calls cost one fsync instead of N.
// Each caller's promise settles after the transaction that holds its change.
import type { StateChange } from "../kasmina/state-store.js";

interface Waiting {
  change: StateChange;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Writes a batch as one transaction; per change, undefined or the error that refused it. */
export type BatchWriter = (changes: readonly StateChange[]) => (Error | undefined)[] | Promise<(Error | undefined)[]>;

export class GroupCommit {
  private queue: Waiting[] = [];
  private busy = false;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: (() => void) | undefined;

  constructor(private readonly write: BatchWriter) {}

  submit(change: StateChange): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ change, resolve, reject });
      if (this.busy) return; // joins the next transaction
      this.busy = true;
      this.idle = new Promise<void>((done) => (this.markIdle = done));
      // setImmediate runs after this loop turn's I/O callbacks: every call that arrived in it has
      // queued its change by then and shares the first transaction.
      setImmediate(() => void this.drain());
    });
  }

  /** Resolves when nothing submitted so far is still waiting. */
  settled(): Promise<void> {
    return this.idle;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      let results: (Error | undefined)[];
      try {
        results = await this.write(batch.map((w) => w.change));
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error));
        results = batch.map(() => failure);
      }
      batch.forEach((w, i) => {
        const error = results[i];
        if (error === undefined) w.resolve();
        else w.reject(error);
      });
    }
    this.busy = false;
    this.markIdle?.();
  }
}
