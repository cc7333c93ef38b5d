// The SQLite writer thread: transactions (and their fsync) run off the event loop, so the server
// keeps taking calls while one commit is being written, and those calls share the next one. The
// thread's code is plain JavaScript evaluated by the worker, so it runs the same from src/ under
// vitest or tsx and from dist/.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { NonceTakenError, StateStoreError, type StateChange } from "../kasmina/state-store.js";

const WRITER = String.raw`
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma("journal_mode = WAL");
// FULL: the WAL is fsynced at every commit, so an acknowledged change survives power loss too.
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 5000");
const put = db.prepare("INSERT INTO items (run, key, value) VALUES (?, ?, ?) ON CONFLICT (run, key) DO UPDATE SET value = excluded.value");
const del = db.prepare("DELETE FROM items WHERE run = ? AND key = ?");
const dropRun = db.prepare("DELETE FROM items WHERE run = ?");
// Put-if-absent: an expired holder may be replaced, a live one may not (changes = 0).
const claim = db.prepare("INSERT INTO nonces (id, expires_ms) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET expires_ms = excluded.expires_ms WHERE nonces.expires_ms <= ?");
const purge = db.prepare("DELETE FROM nonces WHERE expires_ms <= ?");
class Taken extends Error {}
let lastPurge = 0;
const one = db.transaction((change, now) => {
  for (const n of change.nonces) {
    if (claim.run(n.id, Math.round(n.expiresAtMs), now).changes === 0) throw new Taken(n.id);
  }
  if (change.dropRun) dropRun.run(change.runId);
  for (const key of change.deletes) del.run(change.runId, key);
  for (const [key, value] of change.puts) put.run(change.runId, key, value);
});
const batch = db.transaction((changes, now) => {
  const results = changes.map((change) => {
    try {
      one(change, now); // nested: a savepoint, undone alone when its nonce is taken
      return null;
    } catch (error) {
      if (error instanceof Taken) return error.message;
      throw error;
    }
  });
  if (now - lastPurge > 10000) {
    purge.run(now);
    lastPurge = now;
  }
  return results;
});
parentPort.on("message", (message) => {
  if (message.close) {
    db.close();
    parentPort.postMessage({ closed: true });
    return;
  }
  const started = performance.now();
  try {
    const taken = batch(message.changes, message.now);
    parentPort.postMessage({ id: message.id, taken, seconds: (performance.now() - started) / 1000 });
  } catch (error) {
    parentPort.postMessage({ id: message.id, failed: String(error && error.message || error) });
  }
});
`;

interface Reply {
  id?: number;
  taken?: (string | null)[];
  seconds?: number;
  failed?: string;
  closed?: boolean;
}

/** One writer thread for one state file; batches are written strictly one after another. */
export class SqliteWriter {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (reply: Reply) => void; reject: (error: Error) => void }>();
  private next = 0;
  private broken: Error | undefined;

  constructor(path: string) {
    const module = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(WRITER, { eval: true, workerData: { path, module } });
    this.worker.on("message", (reply: Reply) => {
      if (reply.id === undefined) return;
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      waiting?.resolve(reply);
    });
    this.worker.on("error", (error) => this.fail(error));
    this.worker.on("exit", (code) => this.fail(new StateStoreError(`the SQLite writer thread exited (code ${code})`)));
    // The thread must not keep a finished process alive; pending writes hold it by their promises.
    this.worker.unref();
  }

  /** Writes the batch as one transaction; resolves with per-change refusals and its duration. */
  async write(changes: readonly StateChange[], now: number): Promise<{ results: (Error | undefined)[]; seconds: number }> {
    if (this.broken !== undefined) throw this.broken;
    const id = this.next++;
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({
        id,
        now,
        changes: changes.map((c) => ({ runId: c.runId, puts: [...c.puts], deletes: c.deletes, dropRun: c.dropRun === true, nonces: c.nonces })),
      });
    }).finally(() => {
      if (this.pending.size === 0) this.worker.unref();
    });
    if (reply.failed !== undefined) throw new StateStoreError(reply.failed);
    return { results: (reply.taken ?? []).map((t) => (t === null ? undefined : new NonceTakenError(t))), seconds: reply.seconds ?? 0 };
  }

  async close(): Promise<void> {
    if (this.broken !== undefined) return;
    this.worker.ref();
    await new Promise<void>((resolve) => {
      const onMessage = (reply: Reply): void => {
        if (reply.closed !== true) return;
        this.worker.off("message", onMessage);
        resolve();
      };
      this.worker.on("message", onMessage);
      this.worker.postMessage({ close: true });
    });
    this.broken = new StateStoreError("the state store is closed");
    await this.worker.terminate();
  }

  private fail(error: Error): void {
    this.broken ??= error;
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
  }
}
