// The etcd state store against a real etcd (test/support/etcd-server.ts): ownership, fencing, the
// shared nonce ledger, and what an unreachable etcd does. Two store instances play two replicas.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Etcd3 } from "etcd3";
import { EtcdStateStore, describeEndpoints } from "../../src/infra/etcd-state-store.js";
import { NonceTakenError, type StateChange } from "../../src/kasmina/state-store.js";
import { OwnershipLostError, RunOwnedElsewhere, StoreUnreachableError } from "../../src/kasmina/run-ownership.js";
import { noopMetrics } from "../../src/kasmina/ports.js";
import { EtcdCluster } from "../support/etcd-server.js";

let etcd: EtcdCluster;
let prefixSeq = 0;
let prefix = "";
const opened: EtcdStateStore[] = [];

beforeAll(async () => {
  etcd = await EtcdCluster.start(1);
}, 30_000);

afterAll(async () => {
  await etcd.close();
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close().catch(() => undefined)));
});

async function replica(address: string, extra: Partial<ConstructorParameters<typeof EtcdStateStore>[0]> = {}): Promise<EtcdStateStore> {
  const store = new EtcdStateStore({ endpoints: etcd.endpoints, leaseMs: 2000, advertise: address, metrics: noopMetrics, log: () => undefined, prefix, ...extra });
  opened.push(store);
  await store.start();
  return store;
}

const change = (runId: string, puts: Record<string, string>, nonces: string[] = []): StateChange => ({
  runId,
  puts: new Map(Object.entries(puts)),
  deletes: [],
  nonces: nonces.map((id) => ({ id, expiresAtMs: Date.now() + 60_000 })),
});

describe("EtcdStateStore", () => {
  // Each test has its own key prefix in the one etcd.
  beforeEach(() => {
    prefix = `t${++prefixSeq}/`;
  });

  it("describes itself as etcd:ENDPOINTS without credentials", () => {
    expect(describeEndpoints(["http://user:secret@127.0.0.1:2379", "http://10.0.0.2:2379"])).toBe("etcd:http://127.0.0.1:2379,http://10.0.0.2:2379");
  });

  it("a run owned by one replica is refused to another with the owner's address; after a clean close it moves at once with its items", async () => {
    const a = await replica("10.0.0.1:5001");
    const b = await replica("10.0.0.2:5001");
    expect(await a.acquire("run-1")).toEqual(new Map());
    await a.commit(change("run-1", { meta: '{"epoch":3}', "seed/s1": '{"stage":2}' }));
    const refused = await b.acquire("run-1").catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RunOwnedElsewhere);
    expect((refused as RunOwnedElsewhere).owner).toBe("10.0.0.1:5001");
    await a.close(); // revokes the lease: no waiting for the TTL
    expect(await b.acquire("run-1")).toEqual(new Map([["meta", '{"epoch":3}'], ["seed/s1", '{"stage":2}']]));
  });

  it("the nonce ledger has one winner across replicas (put-if-absent), and the loser's change is not applied", async () => {
    const a = await replica("a:1");
    const b = await replica("b:1");
    await a.acquire("run-a");
    await b.acquire("run-b");
    const results = await Promise.allSettled([a.commit(change("run-a", { x: "1" }, ["cmd-1"])), b.commit(change("run-b", { x: "1" }, ["cmd-1"]))]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]?.reason).toBeInstanceOf(NonceTakenError);
    const loserRun = results[0]?.status === "rejected" ? "run-a" : "run-b";
    const loser = loserRun === "run-a" ? a : b;
    expect(await loser.acquire(loserRun)).toEqual(new Map());
  });

  it("fencing refuses a stale owner: a replica whose lease expired cannot overwrite the new owner's state (finding: paused owner)", async () => {
    // The stale replica's monotonic clock is frozen, so its own deadline check never trips: only
    // the transaction's fencing condition stands between it and the new owner's state.
    const stale = await replica("stale:1", { monotonicMs: () => 0 });
    await stale.acquire("run-f");
    await stale.commit(change("run-f", { meta: "old" }));
    const lost: string[] = [];
    stale.onLost((runId) => lost.push(runId));
    // Its lease ends in etcd (as when it was SIGSTOPped past the TTL).
    const admin = new Etcd3({ hosts: etcd.endpoints });
    const ownerKv = (await admin.get(`${prefix}owner/run-f`).exec()).kvs[0];
    await admin.leaseClient.leaseRevoke({ ID: ownerKv!.lease });
    const fresh = await replica("fresh:1");
    expect(await fresh.acquire("run-f")).toEqual(new Map([["meta", "old"]]));
    await fresh.commit(change("run-f", { meta: "new" }));
    const refused = await stale.commit(change("run-f", { meta: "overwritten", extra: "x" })).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OwnershipLostError);
    expect(lost).toEqual(["run-f"]);
    expect(stale.owns("run-f")).toBe(false);
    const items = await admin.getAll().prefix(`${prefix}run/run-f/`).strings();
    expect(items).toEqual({ [`${prefix}run/run-f/meta`]: "new" });
    admin.close();
  });

  it("a replica whose keep-alive deadline passed on its monotonic clock stops owning its runs at once", async () => {
    let now = 0;
    const a = await replica("a:2", { monotonicMs: () => now });
    await a.acquire("run-d");
    const lost: string[] = [];
    a.onLost((runId, reason) => lost.push(`${runId}: ${reason}`));
    expect(a.owns("run-d")).toBe(true);
    now = 2001;
    expect(a.owns("run-d")).toBe(false);
    expect(lost).toEqual([expect.stringContaining("run-d: its keep-alive deadline passed")]);
    await expect(a.commit(change("run-d", { meta: "late" }))).rejects.toBeInstanceOf(OwnershipLostError);
  });

  it("a change larger than etcd's --max-txn-ops is refused whole: nothing of it is applied and the reason is logged", async () => {
    const logged: string[] = [];
    const a = await replica("a:4", { log: (m) => logged.push(m) });
    await a.acquire("run-big");
    const puts: Record<string, string> = {};
    for (let i = 0; i < 5000; i++) puts[`packet/${i}`] = "{}";
    await expect(a.commit(change("run-big", puts, ["cmd-big"]))).rejects.toBeInstanceOf(StoreUnreachableError);
    expect(logged.some((m) => /too many operations in txn request/.test(m))).toBe(true);
    expect(await a.acquire("run-big")).toEqual(new Map());
    await a.commit(change("run-big", { meta: "small" }, ["cmd-big"]));
  });

  it("etcd down: writes and take-overs fail with StoreUnreachableError and reachable turns false; etcd back: nothing committed is lost", async () => {
    const a = await replica("a:3", { callTimeoutMs: 500 });
    await a.acquire("run-u");
    await a.commit(change("run-u", { meta: "before" }, ["cmd-u1"]));
    const states: boolean[] = [];
    a.onReachable((r) => states.push(r));
    await etcd.stop(0);
    try {
      await expect(a.commit(change("run-u", { meta: "during" }))).rejects.toBeInstanceOf(StoreUnreachableError);
      await expect.poll(() => a.reachable, { timeout: 5000 }).toBe(false);
      await expect(a.acquire("run-other")).rejects.toBeInstanceOf(StoreUnreachableError);
    } finally {
      await etcd.restart(0);
    }
    await expect.poll(() => a.reachable, { timeout: 10_000 }).toBe(true);
    expect(states).toEqual([false, true]);
    const items = await a.acquire("run-u");
    expect(items.get("meta")).toBe("before");
    await expect(a.commit(change("run-u", { meta: "again" }, ["cmd-u1"]))).rejects.toBeInstanceOf(NonceTakenError);
  }, 30_000);
});
