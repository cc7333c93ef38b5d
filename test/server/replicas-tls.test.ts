// KASMINA_ETCD_CA / KASMINA_ETCD_CERT / KASMINA_ETCD_KEY against a real etcd that serves its client
// URL over TLS and requires client certificates; certificates are made by openssl for the test.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EtcdCluster } from "../support/etcd-server.js";
import { call, healthStatus } from "../support/grpc-clients.js";
import { germinate, startHarness, type Harness } from "../support/harness.js";
import { inRun, refusal } from "../support/replicas.js";

let dir: string;
let etcd: EtcdCluster;
const harnesses: Harness[] = [];
const file = (name: string): string => join(dir, name);
const openssl = (...args: string[]): void => {
  execFileSync("openssl", args, { stdio: "pipe" });
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kasmina-etcd-tls-"));
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kasmina-etcd-test-ca", "-keyout", file("ca.key"), "-out", file("ca.pem"));
  for (const [name, ext] of [["server", "subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth"], ["client", "subjectAltName=DNS:kasmina\\nextendedKeyUsage=clientAuth"]] as const) {
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${name}`, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`));
    execFileSync("bash", ["-c", `printf '${ext}\\n' > ${file(`${name}.ext`)}`]);
    openssl("x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", file(`${name}.ext`), "-out", file(`${name}.pem`));
  }
  etcd = await EtcdCluster.start(1, { cert: file("server.pem"), key: file("server.key"), ca: file("ca.pem"), clientCert: file("client.pem"), clientKey: file("client.key") });
}, 60_000);

afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

afterAll(async () => {
  await etcd.close();
  rmSync(dir, { recursive: true, force: true });
});

const env = (): Record<string, string> => ({ KASMINA_STATE: "etcd", KASMINA_ETCD_ENDPOINTS: etcd.endpoints.join(","), KASMINA_LEASE_MS: "2000", KASMINA_ETCD_CA: file("ca.pem") });

describe("replicas over etcd with TLS", () => {
  it("a replica with the CA and a client certificate serves runs over https endpoints", async () => {
    expect(etcd.endpoints[0]).toMatch(/^https:/);
    const h = await startHarness({ ...env(), KASMINA_ETCD_CERT: file("client.pem"), KASMINA_ETCD_KEY: file("client.key"), KASMINA_ADVERTISE_ADDRESS: "tls:1" });
    harnesses.push(h);
    expect(await healthStatus(h.server.address)).toBe("SERVING");
    await call(h.client, h.client.applyCommand, { command: germinate(h.clock, "secure") }, inRun("tls-run"));
    expect((await call(h.client, h.client.exportSeedStates, {}, inRun("tls-run"))).seeds.map((s) => s.seedId)).toEqual(["secure"]);
  });

  it("without a client certificate etcd refuses it: NOT_SERVING and UNAVAILABLE", async () => {
    const h = await startHarness({ ...env(), KASMINA_ADVERTISE_ADDRESS: "nocert:1" });
    harnesses.push(h);
    expect(await healthStatus(h.server.address)).toBe("NOT_SERVING");
    expect((await refusal(call(h.client, h.client.exportSeedStates, {}, inRun("tls-run")))).code).toBe(status.UNAVAILABLE);
  });
});
