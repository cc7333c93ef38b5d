// KASMINA_STATE=sqlite (the default): one SQLite file in WAL mode with synchronous=FULL, so every
// committed transaction is fsynced before the calls it holds answer. Changes are group-committed
// (group-commit.ts) and written by a writer thread (sqlite-writer.ts), so the event loop keeps
// serving while a commit is fsynced; each change runs in its own savepoint, so a refused nonce
// undoes only its change. This thread opens, checks and migrates the file and reads it at start-up.
// Schema (version in PRAGMA user_version): items(run, key, value) holds every run's items;
// nonces(id, expires_ms) the service-wide ledger. Inspect with `sqlite3 kasmina-data/kasmina.db`.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { STATE_WRITES_METRIC, StateStoreError, type StateChange, type StateStore, type StoredState } from "../kasmina/state-store.js";
import type { Histogram, MetricsPort } from "../kasmina/ports.js";
import { GroupCommit } from "./group-commit.js";
import { SqliteWriter } from "./sqlite-writer.js";

export const SCHEMA_VERSION = 2;

/**
 * Migrations from each older version to the next. Version 1 kept nonce expiries as fractional
 * seconds (`expires_s REAL`) with no index; version 2 keeps integer milliseconds, indexed for the purge.
 */
const MIGRATIONS: Readonly<Record<number, string>> = {
  1: `CREATE TABLE nonces_v2 (id TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO nonces_v2 (id, expires_ms) SELECT id, CAST(ROUND(expires_s * 1000) AS INTEGER) FROM nonces;
      DROP TABLE nonces;
      ALTER TABLE nonces_v2 RENAME TO nonces;
      CREATE INDEX nonces_expiry ON nonces (expires_ms);`,
};

const CREATE = `
  CREATE TABLE items (run TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run, key)) WITHOUT ROWID;
  CREATE TABLE nonces (id TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL) WITHOUT ROWID;
  CREATE INDEX nonces_expiry ON nonces (expires_ms);`;

export class SqliteStateStore implements StateStore {
  readonly description: string;
  private readonly db: Database.Database;
  private readonly group: GroupCommit;
  private readonly writes: Histogram;
  private readonly writer: SqliteWriter;
  private closed = false;

  /** Opens (creating the folder and file) or fails with a StateStoreError naming the file (app.ts adds KASMINA_STATE_PATH). */
  constructor(
    readonly path: string,
    metrics: MetricsPort,
    private readonly wallMs: () => number = Date.now,
  ) {
    this.description = `sqlite:${path}`;
    const where = path;
    try {
      mkdirSync(dirname(resolve(path)), { recursive: true });
    } catch (error) {
      throw new StateStoreError(`${where}: cannot create its folder: ${(error as Error).message}`);
    }
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (error) {
      throw new StateStoreError(`${where}: cannot open the state file: ${(error as Error).message}`);
    }
    try {
      db.pragma("journal_mode = WAL");
      // FULL: the WAL is fsynced at every commit, so an acknowledged change survives power loss too.
      db.pragma("synchronous = FULL");
      db.pragma("busy_timeout = 5000");
      const check = db.pragma("quick_check", { simple: true }) as string;
      if (check !== "ok") throw new Error(`integrity check failed: ${check}`);
      migrate(db, path);
      // A file we can read but not write fails here, at start-up, not at the first command.
      db.exec("BEGIN IMMEDIATE; COMMIT;");
    } catch (error) {
      db.close();
      if (error instanceof StateStoreError) throw error;
      throw new StateStoreError(`${where}: the state file is unusable (corrupt or unwritable; it was not reset): ${(error as Error).message}`);
    }
    this.db = db;
    this.writes = metrics.histogram(STATE_WRITES_METRIC, "Duration of one committed state-store transaction", "s");
    this.writer = new SqliteWriter(path);
    this.group = new GroupCommit(async (changes) => {
      const { results, seconds } = await this.writer.write(changes, this.wallMs());
      this.writes.record(seconds, { "kasmina.state.store": "sqlite" });
      return results;
    });
  }

  load(): StoredState {
    const runs = new Map<string, Map<string, string>>();
    for (const row of this.db.prepare("SELECT run, key, value FROM items ORDER BY run, key").iterate() as IterableIterator<{ run: string; key: string; value: string }>) {
      let items = runs.get(row.run);
      if (items === undefined) {
        items = new Map();
        runs.set(row.run, items);
      }
      items.set(row.key, row.value);
    }
    const nonces = (this.db.prepare("SELECT id, expires_ms AS expiresAtMs FROM nonces WHERE expires_ms > ?").all(this.wallMs()) as { id: string; expiresAtMs: number }[]);
    return { runs, nonces };
  }

  commit(change: StateChange): Promise<void> {
    if (this.closed) return Promise.reject(new StateStoreError(`the state store ${this.description} is closed`));
    return this.group.submit(change);
  }

  settled(): Promise<void> {
    return this.group.settled();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.group.settled();
    await this.writer.close();
    this.db.close();
  }
}

function migrate(db: Database.Database, path: string): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new StateStoreError(
      `${path}: the state file has schema version ${version}, newer than this Kasmina understands (${SCHEMA_VERSION}); run a newer Kasmina or point KASMINA_STATE_PATH at another file`,
    );
  }
  if (version === SCHEMA_VERSION) return;
  db.transaction(() => {
    if (version === 0) {
      const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number };
      if (tables.n > 0) throw new StateStoreError(`${path}: the file holds tables but no Kasmina schema version; it is not a Kasmina state file`);
      db.exec(CREATE);
    } else {
      for (let v = version; v < SCHEMA_VERSION; v++) {
        const step = MIGRATIONS[v];
        if (step === undefined) throw new StateStoreError(`${path}: no migration from schema version ${v}`);
        db.exec(step);
      }
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}
