// Issue 13 item 4, last case: a three-member etcd cluster whose leader is SIGKILLed while commands
// flow through two replicas loses no acknowledged command and admits no replay. Afterwards a fresh
// replica (which has nothing in memory) reads every run back from etcd.
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AdaptationCommand } from "../../src/leyline.js";
import { EtcdCluster } from "../support/etcd-server.js";
import { germinate } from "../support/harness.js";
import { Replica, call, eventually, inRun, now, refusal } from "../support/replicas.js";

const LEASE_MS = 4000;

let etcd: EtcdCluster;
let replicas: Replica[] = [];

beforeAll(async () => {
  etcd = await EtcdCluster.start(3);
  replicas = await Promise.all([0, 1].map(() => Replica.start(etcd.endpoints, { KASMINA_LEASE_MS: String(LEASE_MS) })));
}, 60_000);

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.close()));
  await etcd.close();
});

describe("replicas over a three-member etcd cluster", () => {
  it("the etcd leader SIGKILLed while commands flow: no acknowledged command is lost and none can be replayed", async () => {
    const acknowledged: { run: string; seed: string; command: AdaptationCommand }[] = [];
    const errors: string[] = [];
    let stop = false;
    // Four runs, two per replica, each driven by its own sequential client loop.
    const loops = [0, 1, 2, 3].map(async (i) => {
      const replica = replicas[i % 2]!;
      const run = `cluster-${i}`;
      for (let n = 0; !stop; n++) {
        const seed = `s${n}`;
        const command = germinate(now(), seed);
        try {
          await call(replica.client, replica.client.applyCommand, { command }, inRun(run));
          acknowledged.push({ run, seed, command });
        } catch (error) {
          const e = error as ServiceError;
          errors.push(`${e.code}`);
          if (e.code !== status.UNAVAILABLE) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    });
    await eventually(async () => {
      if (acknowledged.length < 20) throw new Error("not flowing yet");
    }, 20_000);
    const leader = await etcd.leader();
    await etcd.kill(leader);
    const atKill = acknowledged.length;
    await eventually(async () => {
      if (acknowledged.length < atKill + 20) throw new Error("not flowing again yet");
    }, 30_000, 100);
    stop = true;
    await Promise.all(loops);
    // Every acknowledged germination is there, read by a replica that loads the runs from etcd.
    await Promise.all(replicas.map((r) => r.kill("SIGTERM")));
    const reader = await Replica.start(etcd.endpoints.filter((_, i) => i !== leader), { KASMINA_LEASE_MS: String(LEASE_MS) });
    replicas.push(reader);
    for (const run of [0, 1, 2, 3].map((i) => `cluster-${i}`)) {
      const seeds = new Set((await eventually(() => call(reader.client, reader.client.exportSeedStates, {}, inRun(run)), 10_000)).seeds.map((s) => s.seedId));
      for (const a of acknowledged.filter((x) => x.run === run)) expect(seeds.has(a.seed), `${run}/${a.seed}`).toBe(true);
    }
    // No replay: every acknowledged command is refused again, in its run and in another.
    for (const a of acknowledged.slice(0, 40)) {
      expect((await refusal(call(reader.client, reader.client.applyCommand, { command: a.command }, inRun(a.run)))).details).toMatch(/^nonce_replayed/);
    }
    for (const a of acknowledged.slice(-10)) {
      expect((await refusal(call(reader.client, reader.client.applyCommand, { command: a.command }, inRun("elsewhere")))).details).toMatch(/^nonce_replayed/);
    }
    expect(errors.every((code) => code === String(status.UNAVAILABLE))).toBe(true);
  }, 90_000);
});
