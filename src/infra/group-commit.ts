// Group commit (DESIGN §2.2, issue 11): changes submitted while one transaction is being written wait
// for the next, and all of them share it, so N concurrent calls cost one fsync instead of N. Each
// caller's promise settles after the transaction that holds its change.
import type { StateChange } from "../kasmina/state-store.js";

interface Waiting {
  change: StateChange;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Writes a batch as one transaction; returns, per change, undefined or the error that refused it. */
export type BatchWriter = (changes: readonly StateChange[]) => (Error | undefined)[];

export class GroupCommit {
  private queue: Waiting[] = [];
  private scheduled = false;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: (() => void) | undefined;

  constructor(private readonly write: BatchWriter) {}

  submit(change: StateChange): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ change, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      this.idle = new Promise<void>((done) => (this.markIdle = done));
      // setImmediate runs after the I/O callbacks of this loop turn: every call that arrived in it
      // has queued its change by then and joins this transaction.
      setImmediate(() => this.flush());
    });
  }

  /** Resolves when nothing submitted so far is still waiting. */
  settled(): Promise<void> {
    return this.idle;
  }

  private flush(): void {
    const batch = this.queue;
    this.queue = [];
    let results: (Error | undefined)[];
    try {
      results = this.write(batch.map((w) => w.change));
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      results = batch.map(() => failure);
    }
    batch.forEach((w, i) => {
      const error = results[i];
      if (error === undefined) w.resolve();
      else w.reject(error);
    });
    if (this.queue.length > 0) {
      setImmediate(() => this.flush());
      return;
    }
    this.scheduled = false;
    this.markIdle?.();
  }
}
