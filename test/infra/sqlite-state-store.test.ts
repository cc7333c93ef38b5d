// The SQLite state store (DESIGN §2.2): schema versions and migration, refusals at start-up that name
// KASMINA_STATE_PATH, put-if-absent nonces, and group commit.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryStateStore } from "../../src/infra/memory-state-store.js";
import { SCHEMA_VERSION, SqliteStateStore } from "../../src/infra/sqlite-state-store.js";
import { noopMetrics, type Histogram, type MetricsPort } from "../../src/kasmina/ports.js";
import { NonceTakenError, StateStoreError, type StateStore } from "../../src/kasmina/state-store.js";
import { call } from "../support/grpc-clients.js";
import { germinate, SECRET, startHarness, type Harness } from "../support/harness.js";
import { spawnKasmina } from "../support/process.js";

const dirs: string[] = [];
const stores: StateStore[] = [];
let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempPath(name = "kasmina.db"): string {
  const dir = mkdtempSync(join(tmpdir(), "kasmina-sqlite-"));
  dirs.push(dir);
  return join(dir, name);
}

const change = (runId: string, puts: Record<string, string>, nonces: { id: string; expiresAtMs: number }[] = [], deletes: string[] = []) => ({
  runId,
  puts: new Map(Object.entries(puts)),
  deletes,
  nonces,
});

/** Counts committed transactions through the port the store records them on. */
class CountingMetrics implements MetricsPort {
  transactions = 0;
  counter = noopMetrics.counter;
  histogram(name: string): Histogram {
    return { record: () => void (name === "kasmina.state.writes" && (this.transactions += 1)) };
  }
}

describe("SqliteStateStore", () => {
  it("migrates a version 1 file (nonce expiries in seconds) to version 2, keeping every item and nonce", async () => {
    const path = tempPath();
    const v1 = new Database(path);
    v1.exec(`CREATE TABLE items (run TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run, key));
             CREATE TABLE nonces (id TEXT PRIMARY KEY, expires_s REAL);
             PRAGMA user_version = 1;`);
    const expiresS = 1_790_000_000 + 600.5;
    v1.prepare("INSERT INTO nonces VALUES (?, ?)").run("cmd-from-v1", expiresS);
    v1.prepare("INSERT INTO items VALUES (?, ?, ?)").run("run-a", "meta", "{}");
    v1.close();

    const store = new SqliteStateStore(path, noopMetrics, () => 1_790_000_000_000);
    stores.push(store);
    expect(store.load()).toEqual({ runs: new Map([["run-a", new Map([["meta", "{}"]])]]), nonces: [{ id: "cmd-from-v1", expiresAtMs: Math.round(expiresS * 1000) }] });
    await store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'nonces_expiry'").all()).toHaveLength(1);
    db.close();
  });

  it("a command id held in a migrated version 1 ledger is refused after start-up", async () => {
    const path = tempPath();
    const v1 = new Database(path);
    v1.exec(`CREATE TABLE items (run TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run, key));
             CREATE TABLE nonces (id TEXT PRIMARY KEY, expires_s REAL);
             PRAGMA user_version = 1;`);
    v1.close();
    harness = await startHarness({ KASMINA_STATE: "sqlite", KASMINA_STATE_PATH: path });
    const cmd = germinate(harness.clock, "s");
    await harness.close();
    harness = undefined;
    // Put the id in the old layout, as a version 1 Kasmina would have, then start again.
    const db = new Database(path);
    db.exec("DROP TABLE nonces; CREATE TABLE nonces (id TEXT PRIMARY KEY, expires_s REAL); PRAGMA user_version = 1;");
    db.prepare("INSERT INTO nonces VALUES (?, ?)").run(cmd.commandId, 1_790_000_000 + 300);
    db.close();
    harness = await startHarness({ KASMINA_STATE: "sqlite", KASMINA_STATE_PATH: path });
    const refused = await call(harness.client, harness.client.applyCommand, { command: cmd }).catch((e: unknown) => e as ServiceError);
    expect((refused as ServiceError).code).toBe(status.PERMISSION_DENIED);
    expect((refused as ServiceError).details).toMatch(/^nonce_replayed/);
  });

  it("refuses a newer schema, naming the file", () => {
    const path = tempPath();
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => new SqliteStateStore(path, noopMetrics)).toThrow(StateStoreError);
    expect(() => new SqliteStateStore(path, noopMetrics)).toThrow(new RegExp(`${path}.*schema version ${SCHEMA_VERSION + 1}, newer`));
  });

  it("nonces are put-if-absent: a live holder refuses the whole change, an expired one is replaced", async () => {
    let wall = 1_000_000;
    const store = new SqliteStateStore(tempPath(), noopMetrics, () => wall);
    stores.push(store);
    await store.commit(change("r", { a: "1" }, [{ id: "n1", expiresAtMs: wall + 1000 }]));
    await expect(store.commit(change("r", { a: "2" }, [{ id: "n1", expiresAtMs: wall + 1000 }]))).rejects.toBeInstanceOf(NonceTakenError);
    expect(store.load().runs.get("r")?.get("a")).toBe("1");
    wall += 1001;
    await store.commit(change("r", { a: "3" }, [{ id: "n1", expiresAtMs: wall + 1000 }]));
    expect(store.load()).toEqual({ runs: new Map([["r", new Map([["a", "3"]])]]), nonces: [{ id: "n1", expiresAtMs: wall + 1000 }] });
  });

  it("group commit: concurrent changes share transactions, each in order, one refused change undoing only itself", async () => {
    const metrics = new CountingMetrics();
    const store = new SqliteStateStore(tempPath(), metrics, () => 0);
    stores.push(store);
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => store.commit(change("r", { [`k${i % 5}`]: String(i) }, [{ id: i === 7 ? "n0" : `n${i}`, expiresAtMs: 10 }]))),
    );
    expect(results.filter((r) => r.status === "rejected")).toHaveLength(1);
    expect(metrics.transactions).toBeLessThan(50);
    // The last writer of each key wins (changes apply in submission order).
    expect(store.load().runs.get("r")).toEqual(new Map([["k0", "45"], ["k1", "46"], ["k2", "47"], ["k3", "48"], ["k4", "49"]]));
  });

  it("the memory store keeps the same contract (put-if-absent, order, delete)", async () => {
    const store = new MemoryStateStore(noopMetrics, () => 0);
    stores.push(store);
    await store.commit(change("r", { a: "1", b: "1" }, [{ id: "n", expiresAtMs: 10 }]));
    await expect(store.commit(change("r", { a: "2" }, [{ id: "n", expiresAtMs: 10 }]))).rejects.toBeInstanceOf(NonceTakenError);
    await store.commit(change("r", { a: "3" }, [], ["b"]));
    expect(store.load()).toEqual({ runs: new Map([["r", new Map([["a", "3"]])]]), nonces: [{ id: "n", expiresAtMs: 10 }] });
  });
});

describe("start-up refuses a state file it cannot use (exit code 2, naming KASMINA_STATE_PATH)", () => {
  const startWith = async (path: string): Promise<{ code: number | null; stderr: string }> => {
    const proc = spawnKasmina({ ESPER_LEYLINE_SECRET: SECRET, KASMINA_STATE: "sqlite", KASMINA_STATE_PATH: path, KASMINA_ISOLATION_BACKEND: "js" });
    const { code } = await proc.exited();
    return { code, stderr: proc.stderr() };
  };

  it("a corrupt file", async () => {
    const path = tempPath();
    writeFileSync(path, Buffer.alloc(8192, 0x5a));
    const { code, stderr } = await startWith(path);
    expect(code).toBe(2);
    expect(stderr).toContain(`KASMINA_STATE_PATH: ${path}`);
    expect(stderr).toContain("was not reset");
  });

  it("a newer schema", async () => {
    const path = tempPath();
    const db = new Database(path);
    db.pragma("user_version = 99");
    db.close();
    const { code, stderr } = await startWith(path);
    expect(code).toBe(2);
    expect(stderr).toContain(`KASMINA_STATE_PATH: ${path}: the state file has schema version 99, newer than this Kasmina understands (${SCHEMA_VERSION})`);
  });

  it("an unwritable location (its folder is a file)", async () => {
    const blocker = tempPath("not-a-folder");
    writeFileSync(blocker, "x");
    const { code, stderr } = await startWith(join(blocker, "kasmina.db"));
    expect(code).toBe(2);
    expect(stderr).toContain(`KASMINA_STATE_PATH: ${join(blocker, "kasmina.db")}: cannot create its folder`);
  });
});
