// KASMINA_STATE=etcd in process (two apps over one real etcd): the ordering hazard of a nonce
// claimed by another replica, watchers of a lost run, GetStatus.state_store, and configuration.
import { status, type ServiceError } from "@grpc/grpc-js";
import { Etcd3 } from "etcd3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { EtcdCluster } from "../support/etcd-server.js";
import { call, healthStatus } from "../support/grpc-clients.js";
import { freePort } from "../support/redis-server.js";
import { germinate, startHarness, type Harness } from "../support/harness.js";
import { inRun, refusal } from "../support/replicas.js";

let etcd: EtcdCluster;
const harnesses: Harness[] = [];

beforeAll(async () => {
  etcd = await EtcdCluster.start(1);
}, 30_000);

afterAll(async () => {
  await etcd.close();
});

afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

async function replica(name: string): Promise<Harness> {
  const h = await startHarness({ KASMINA_STATE: "etcd", KASMINA_ETCD_ENDPOINTS: etcd.endpoints.join(","), KASMINA_LEASE_MS: "2000", KASMINA_ADVERTISE_ADDRESS: `${name}:50051` });
  harnesses.push(h);
  return h;
}

describe("KASMINA_STATE=etcd in process", () => {
  it("a nonce another replica already claimed is refused and leaves this replica's run as it was (finding: apply-then-claim ordering)", async () => {
    const a = await replica("a.hazard");
    const b = await replica("b.hazard");
    await call(a.client, a.client.applyCommand, { command: germinate(a.clock, "kept") }, inRun("hazard-a"));
    const before = await call(a.client, a.client.exportSeedStates, {}, inRun("hazard-a"));
    const cmd = germinate(b.clock, "claimed");
    await call(b.client, b.client.applyCommand, { command: cmd }, inRun("hazard-b"));
    // Replica a has never seen the id: it applies the command in memory, and etcd refuses the claim.
    const refused = await refusal(call(a.client, a.client.applyCommand, { command: cmd }, inRun("hazard-a")));
    expect(refused.code).toBe(status.PERMISSION_DENIED);
    expect(refused.details).toMatch(/^nonce_replayed/);
    expect(await call(a.client, a.client.exportSeedStates, {}, inRun("hazard-a"))).toEqual(before);
  });

  it("each call's nonce is claimed in its own call's transaction, also when two calls of one replica interleave (finding: nonce taken by the wrong call)", async () => {
    const a = await replica("a.interleave");
    const b = await replica("b.interleave");
    const claimed = germinate(b.clock, "claimed");
    await call(b.client, b.client.applyCommand, { command: claimed }, inRun("interleave-b"));
    const fresh = germinate(a.clock, "fresh");
    await call(a.client, a.client.exportSeedStates, {}, inRun("interleave-1"));
    await call(a.client, a.client.exportSeedStates, {}, inRun("interleave-2"));
    // Both calls enter the API in one turn of the event loop, as two requests read from one socket do.
    const context = (run: string) => ({ method: "ApplyCommand", metadata: inRun(run), signal: new AbortController().signal });
    const results = await Promise.allSettled([
      a.app.api.applyCommand({ command: fresh }, context("interleave-1")),
      a.app.api.applyCommand({ command: claimed }, context("interleave-2")),
    ]);
    expect(results[0]?.status).toBe("fulfilled");
    expect(results[1]?.status).toBe("rejected");
    expect(((results[1] as PromiseRejectedResult).reason as Error).message).toMatch(/^nonce_replayed/);
    const seeds = await call(a.client, a.client.exportSeedStates, {}, inRun("interleave-1"));
    expect(seeds.seeds.map((s) => s.seedId)).toEqual(["fresh"]);
  });

  it("GetStatus.state_store is etcd:ENDPOINTS", async () => {
    const a = await replica("a.status");
    const st = await call(a.client, a.client.getStatus, {}, inRun("status-run"));
    expect(st.stateStore).toBe(`etcd:${etcd.endpoints.join(",")}`);
  });

  it("a replica that loses its lease drops the run and ends its watchers with UNAVAILABLE", async () => {
    const a = await replica("a.watch");
    await call(a.client, a.client.applyCommand, { command: germinate(a.clock, "w") }, inRun("watch-run"));
    const stream = a.client.watchTelemetry({}, inRun("watch-run"));
    stream.on("data", () => undefined);
    const ended = new Promise<ServiceError | "ok">((resolve) => {
      stream.on("error", (error: ServiceError) => resolve(error));
      stream.on("end", () => resolve("ok"));
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    // The lease ends in etcd (as when etcd expired it): the next keep-alive learns it.
    const admin = new Etcd3({ hosts: etcd.endpoints });
    try {
      const owner = (await admin.get("kasmina/owner/watch-run").exec()).kvs[0];
      expect(owner).toBeDefined();
      await admin.leaseClient.leaseRevoke({ ID: owner!.lease });
    } finally {
      admin.close();
    }
    const result = await ended;
    expect(result).not.toBe("ok");
    expect((result as ServiceError).code).toBe(status.UNAVAILABLE);
    expect((result as ServiceError).details).toMatch(/stopped serving training run "watch-run"/);
    // It takes the run again (nobody else holds it) with its state intact.
    const seeds = await call(a.client, a.client.exportSeedStates, {}, inRun("watch-run"));
    expect(seeds.seeds.map((s) => s.seedId)).toEqual(["w"]);
  });
});

describe("etcd reachability and credentials", () => {
  it("a replica started while etcd is unreachable is NOT_SERVING and answers UNAVAILABLE, and never crashes", async () => {
    const h = await startHarness({ KASMINA_STATE: "etcd", KASMINA_ETCD_ENDPOINTS: `http://127.0.0.1:${await freePort()}`, KASMINA_LEASE_MS: "2000", KASMINA_ADVERTISE_ADDRESS: "down:1" });
    harnesses.push(h);
    expect(await healthStatus(h.server.address)).toBe("NOT_SERVING");
    const refused = await refusal(call(h.client, h.client.exportSeedStates, {}, inRun("r")));
    expect(refused.code).toBe(status.UNAVAILABLE);
    expect(refused.details).toMatch(/unreachable/);
  });

  it("KASMINA_ETCD_USERNAME/PASSWORD authenticate to an etcd with auth enabled; a wrong password serves nothing and is never shown", async () => {
    const secured = await EtcdCluster.start(1);
    try {
      secured.enableAuth("root", "etcd-pw-1");
      const env = { KASMINA_STATE: "etcd", KASMINA_ETCD_ENDPOINTS: secured.endpoints.join(","), KASMINA_LEASE_MS: "2000", KASMINA_ETCD_USERNAME: "root" };
      const good = await startHarness({ ...env, KASMINA_ETCD_PASSWORD: "etcd-pw-1", KASMINA_ADVERTISE_ADDRESS: "good:1" });
      harnesses.push(good);
      await call(good.client, good.client.applyCommand, { command: germinate(good.clock, "authed") }, inRun("auth-run"));
      const st = await call(good.client, good.client.getStatus, {}, inRun("auth-run"));
      expect(st.stateStore).toBe(`etcd:${secured.endpoints.join(",")}`);
      expect(JSON.stringify(st, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v))).not.toContain("etcd-pw-1");
      const bad = await startHarness({ ...env, KASMINA_ETCD_PASSWORD: "wrong-pw-2", KASMINA_ADVERTISE_ADDRESS: "bad:1" });
      harnesses.push(bad);
      expect(await healthStatus(bad.server.address)).toBe("NOT_SERVING");
      const refused = await refusal(call(bad.client, bad.client.exportSeedStates, {}, inRun("auth-run")));
      expect(refused.code).toBe(status.UNAVAILABLE);
      expect(refused.details).not.toContain("wrong-pw-2");
      await Promise.all(harnesses.splice(0).map((h) => h.close()));
    } finally {
      await secured.close();
    }
  });
});

describe("replica configuration", () => {
  const base = { KASMINA_STATE: "etcd", KASMINA_PORT: "50051" };
  it("reads endpoints, lease, advertised address and credentials", () => {
    const config = loadConfig({ ...base, KASMINA_ETCD_ENDPOINTS: "http://10.0.0.1:2379, http://10.0.0.2:2379", KASMINA_LEASE_MS: "4000", KASMINA_ETCD_USERNAME: "kasmina", KASMINA_ETCD_PASSWORD: "pw" });
    expect(config.etcd).toEqual({ endpoints: ["http://10.0.0.1:2379", "http://10.0.0.2:2379"], leaseMs: 4000, advertise: "127.0.0.1:50051", auth: { username: "kasmina", password: "pw" }, tls: undefined });
    expect(loadConfig(base).etcd?.leaseMs).toBe(10_000);
  });

  it.each([
    [{ KASMINA_LEASE_MS: "1000" }, /^KASMINA_LEASE_MS: must be an integer in \[2000, 3600000\]/],
    [{ KASMINA_PORT: "0" }, /^KASMINA_ADVERTISE_ADDRESS: is needed/],
    [{ KASMINA_ADVERTISE_ADDRESS: "no-port" }, /^KASMINA_ADVERTISE_ADDRESS: expected HOST:PORT/],
    [{ KASMINA_ETCD_ENDPOINTS: "10.0.0.1:2379" }, /^KASMINA_ETCD_ENDPOINTS: expected comma-separated http/],
    [{ KASMINA_ETCD_USERNAME: "kasmina" }, /^KASMINA_ETCD_PASSWORD: etcd authentication needs both/],
    [{ KASMINA_ETCD_CA: "/nonexistent/ca.pem" }, /^KASMINA_ETCD_CA: cannot read/],
  ])("refuses %o", (env, message) => {
    expect(() => loadConfig({ ...base, ...env })).toThrow(message);
  });

  it("never shows a password from an endpoint URL in the error", () => {
    expect(() => loadConfig({ ...base, KASMINA_ETCD_ENDPOINTS: "ftp://user:hunter2@host:1" })).toThrow(/^(?!.*hunter2)/s);
  });
});
