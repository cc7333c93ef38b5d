// Issue 13 item 4: three real replicas (the built process) over a real etcd. Runs are created
// through different replicas; owners are SIGKILLed, SIGSTOPped past their lease and SIGTERMed; etcd
// is stopped and started again. Every check reads state back through the public gRPC API.
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KasminaServiceClient } from "../../generated/esper/kasmina/v1/kasmina.js";
import { SeedOperation, type AdaptationCommand } from "../../src/leyline.js";
import { EtcdCluster } from "../support/etcd-server.js";
import { germinate, seedOp } from "../support/harness.js";
import { healthStatus } from "../support/grpc-clients.js";
import { Replica, call, eventually, inRun, now, ownerOf, refusal } from "../support/replicas.js";

const LEASE_MS = 3000;

let etcd: EtcdCluster;
let replicas: Replica[] = [];

beforeAll(async () => {
  etcd = await EtcdCluster.start(1);
  replicas = await Promise.all([0, 1, 2].map(() => Replica.start(etcd.endpoints, { KASMINA_LEASE_MS: String(LEASE_MS) })));
}, 60_000);

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.close()));
  await etcd.close();
});

const apply = (client: KasminaServiceClient, cmd: AdaptationCommand, run: string) => call(client, client.applyCommand, { command: cmd }, inRun(run));

/** What must survive a failover: seeds, rollback records, epoch (and the rest of GetStatus's run view). */
async function snapshot(client: KasminaServiceClient, run: string, retired: string) {
  const status = await call(client, client.getStatus, {}, inRun(run));
  return {
    seeds: await call(client, client.exportSeedStates, {}, inRun(run)),
    rollback: await call(client, client.getRollbackPayload, { seedId: retired }, inRun(run)),
    epoch: status.currentEpoch,
    seedCount: status.seeds,
    kernelBreaker: status.kernelBreaker,
  };
}

/** A run with two seeds, one retired (a rollback record), and an epoch. */
async function populate(client: KasminaServiceClient, run: string): Promise<AdaptationCommand> {
  const accepted = germinate(now(), "s1");
  await apply(client, accepted, run);
  await apply(client, germinate(now(), "gone"), run);
  await apply(client, seedOp(now(), "gone", SeedOperation.SEED_OP_CULL), run);
  await call(client, client.updateEpoch, { epoch: 7 }, inRun(run));
  return accepted;
}

describe("replicas over etcd (three processes, one etcd)", () => {
  it("runs created through different replicas are served by their owner; any other replica answers UNAVAILABLE naming it in kasmina-owner", async () => {
    for (const [i, replica] of replicas.entries()) await populate(replica.client, `own-${i}`);
    for (const [i, owner] of replicas.entries()) {
      const other = replicas[(i + 1) % 3]!;
      const refused = await refusal(call(other.client, other.client.exportSeedStates, {}, inRun(`own-${i}`)));
      expect(refused.code).toBe(status.UNAVAILABLE);
      expect(ownerOf(refused)).toBe(owner.address);
      const st = await call(owner.client, owner.client.getStatus, {}, inRun(`own-${i}`));
      expect(st.stateStore).toBe(`etcd:${etcd.endpoints.join(",")}`);
      expect(st.currentEpoch).toBe(7);
    }
  });

  it("the owner SIGKILLed: within the lease TTL plus 2 s another replica serves its runs with the same seeds, rollback records and epoch, and refuses a replay", async () => {
    const victim = replicas[0]!;
    const runs = ["kill-a", "kill-b"];
    const accepted = new Map<string, AdaptationCommand>();
    for (const run of runs) accepted.set(run, await populate(victim.client, run));
    const before = new Map<string, Awaited<ReturnType<typeof snapshot>>>();
    for (const run of runs) before.set(run, await snapshot(victim.client, run, "gone"));
    const survivor = replicas[1]!;
    await victim.kill("SIGKILL");
    const killedAt = Date.now();
    for (const run of runs) {
      await eventually(() => call(survivor.client, survivor.client.exportSeedStates, {}, inRun(run)), LEASE_MS + 5000);
      if (run === runs[0]) expect(Date.now() - killedAt).toBeLessThanOrEqual(LEASE_MS + 2000);
      expect(await snapshot(survivor.client, run, "gone")).toEqual(before.get(run));
      // The ledger moved with nothing lost: the command applied before the kill is refused, here and in another run elsewhere.
      expect((await refusal(apply(survivor.client, accepted.get(run)!, run))).details).toMatch(/^nonce_replayed/);
      expect((await refusal(apply(replicas[2]!.client, accepted.get(run)!, `replay-${run}`))).details).toMatch(/^nonce_replayed/);
    }
    await victim.restart();
  });

  it("a command sent to two replicas at once is applied once", async () => {
    // Same run: one replica takes it, the other is told who owns it.
    const same = germinate(now(), "twice");
    const sameRun = await Promise.allSettled([apply(replicas[1]!.client, same, "dup-run"), apply(replicas[2]!.client, same, "dup-run")]);
    expect(sameRun.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    // Two runs on two replicas: the shared ledger has one winner.
    const cmd = germinate(now(), "once");
    const results = await Promise.allSettled([apply(replicas[1]!.client, cmd, "dup-1"), apply(replicas[2]!.client, cmd, "dup-2")]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as ServiceError);
    expect(won).toHaveLength(1);
    expect(lost.map((e) => [e.code, /^nonce_replayed/.test(e.details)])).toEqual([[status.PERMISSION_DENIED, true]]);
    // The loser's run kept nothing of it.
    const loser = results[0]!.status === "rejected" ? { replica: replicas[1]!, run: "dup-1" } : { replica: replicas[2]!, run: "dup-2" };
    const seeds = await call(loser.replica.client, loser.replica.client.exportSeedStates, {}, inRun(loser.run));
    expect(seeds.seeds.map((s) => s.seedId)).not.toContain("once");
  });

  it("a replica SIGSTOPped past its lease and then SIGCONTed cannot write: the new owner's state is intact", async () => {
    const paused = replicas[2]!;
    await populate(paused.client, "stop-run");
    process.kill(paused.pid, "SIGSTOP");
    let resumed = false;
    try {
      await new Promise((resolve) => setTimeout(resolve, LEASE_MS + 1000));
      const taker = replicas[1]!;
      await eventually(() => apply(taker.client, germinate(now(), "after"), "stop-run"), LEASE_MS + 5000);
      process.kill(paused.pid, "SIGCONT");
      resumed = true;
      const refused = await refusal(apply(paused.client, germinate(now(), "stale"), "stop-run"));
      expect(refused.code).toBe(status.UNAVAILABLE);
      expect(ownerOf(refused)).toBe(taker.address);
      const seeds = (await call(taker.client, taker.client.exportSeedStates, {}, inRun("stop-run"))).seeds.map((s) => s.seedId);
      expect(seeds).toContain("after");
      expect(seeds).not.toContain("stale");
    } finally {
      if (!resumed) process.kill(paused.pid, "SIGCONT");
    }
  }, 30_000);

  it("a clean SIGTERM hands its runs over without waiting for the lease TTL", async () => {
    const leaving = replicas[1]!;
    await populate(leaving.client, "term-run");
    const before = await snapshot(leaving.client, "term-run", "gone");
    await leaving.kill("SIGTERM");
    const stoppedAt = Date.now();
    const taker = replicas[0]!;
    await eventually(() => call(taker.client, taker.client.exportSeedStates, {}, inRun("term-run")), LEASE_MS);
    // The revoked lease freed the run at once: well inside the TTL that a crash has to wait out.
    expect(Date.now() - stoppedAt).toBeLessThan(LEASE_MS);
    expect(await snapshot(taker.client, "term-run", "gone")).toEqual(before);
    await leaving.restart();
  });

  it("etcd stopped: health NOT_SERVING and calls UNAVAILABLE; etcd back: service resumes with nothing lost", async () => {
    const owner = replicas[0]!;
    const accepted = await populate(owner.client, "etcd-run");
    const during = germinate(now(), "during");
    const before = await snapshot(owner.client, "etcd-run", "gone");
    await etcd.stop(0);
    try {
      await expect.poll(() => healthStatus(owner.address), { timeout: LEASE_MS + 5000, interval: 200 }).toBe("NOT_SERVING");
      const refused = await refusal(apply(owner.client, during, "etcd-run"));
      expect(refused.code).toBe(status.UNAVAILABLE);
      expect((await refusal(call(replicas[2]!.client, replicas[2]!.client.exportSeedStates, {}, inRun("never-seen")))).code).toBe(status.UNAVAILABLE);
    } finally {
      await etcd.restart(0);
    }
    await expect.poll(() => healthStatus(owner.address), { timeout: 15_000, interval: 200 }).toBe("SERVING");
    const after = await eventually(() => snapshot(owner.client, "etcd-run", "gone"), 15_000, 200);
    expect(after).toEqual(before);
    expect((await refusal(apply(owner.client, accepted, "etcd-run"))).details).toMatch(/^nonce_replayed/);
    // The command refused while etcd was down was not applied, and can be sent again.
    await eventually(() => apply(owner.client, during, "etcd-run"), 10_000, 200);
    expect((await call(owner.client, owner.client.exportSeedStates, {}, inRun("etcd-run"))).seeds.map((s) => s.seedId)).toContain("during");
  }, 60_000);
});
