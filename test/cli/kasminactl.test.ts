// kasminactl against the real built server (node dist/src/main.js): tables for people, --json for
// scripts, signed commands from JSON files, TLS and token flags, and exit codes that tell a script
// what went wrong.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, kasminaClient } from "../support/grpc-clients.js";
import { SECRET } from "../support/harness.js";
import { spawnKasmina, type KasminaProcess } from "../support/process.js";
import { freePort } from "../support/redis-server.js";
import { ctl, ctlProcess, germinateJson, tempJson } from "./ctl.js";
import type { KasminaServiceClient } from "../../generated/esper/kasmina/v1/kasmina.js";

let kasmina: KasminaProcess;
let target: string;
let client: KasminaServiceClient;
const signed = { ESPER_LEYLINE_SECRET: SECRET };

beforeAll(async () => {
  kasmina = spawnKasmina({ ESPER_LEYLINE_SECRET: SECRET });
  target = await kasmina.address();
  client = kasminaClient(target);
});

afterAll(async () => {
  client?.close();
  expect((await kasmina?.stop())?.code).toBe(0);
});

describe("kasminactl against the real server", () => {
  it("prints --help and exits 0; no command or an unknown flag is a usage error (exit 2)", async () => {
    const help = await ctl(["--help"]);
    expect(help.code).toBe(0);
    for (const word of ["status", "runs", "seeds", "watch", "drain", "send FILE.json", "close-run", "--target", "--tls", "--ca", "--cert", "--key", "--token", "--run", "--json"]) {
      expect(help.stdout).toContain(word);
    }
    expect((await ctl([])).code).toBe(2);
    const bad = await ctl(["--target", target, "--bogus", "status"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--bogus");
    const unknown = await ctl(["--target", target, "frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });

  it("status: a readable block for people, proto3 JSON for scripts", async () => {
    const human = await ctl(["--target", target, "status"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^version\s+0\.1\.0$/m);
    expect(human.stdout).toMatch(/^kernel breaker\s+CLOSED$/m);
    expect(human.stdout).toMatch(/^isolation backend\s+\S+$/m);
    const json = await ctl(["--target", target, "--json", "status"]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ version: "0.1.0", kernelBreaker: "CIRCUIT_STATE_CLOSED" });
  });

  it("send FILE.json signs the command with ESPER_LEYLINE_SECRET and applies it; seeds shows the result", async () => {
    const sent = await ctl(["--target", target, "send", tempJson(germinateJson("ctl-seed-1"))], signed);
    expect(sent.stderr).toBe("");
    expect(sent.code).toBe(0);
    expect(sent.stdout).toContain("seed ctl-seed-1: TRAINING");
    expect(sent.stdout).toContain("EVENT");
    const seeds = await ctl(["--target", target, "seeds"]);
    expect(seeds.code).toBe(0);
    expect(seeds.stdout).toMatch(/^SEED\s+STAGE/m);
    expect(seeds.stdout).toMatch(/^ctl-seed-1\s+TRAINING/m);
    const json = JSON.parse((await ctl(["--target", target, "--json", "seeds"])).stdout) as { seeds: { seedId: string; stage: string }[] };
    expect(json.seeds).toContainEqual(expect.objectContaining({ seedId: "ctl-seed-1", stage: "SEED_STAGE_TRAINING" }));
  });

  it("send reads the secret from ESPER_LEYLINE_SECRET_FILE too", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kasminactl-secret-"));
    writeFileSync(join(dir, "secret"), `${SECRET}\n`);
    const sent = await ctl(["--target", target, "--json", "send", tempJson(germinateJson("ctl-seed-2"))], { ESPER_LEYLINE_SECRET_FILE: join(dir, "secret") });
    expect(sent.code).toBe(0);
    expect(JSON.parse(sent.stdout)).toMatchObject({ seed: { seedId: "ctl-seed-2", stage: "SEED_STAGE_TRAINING" } });
  });

  it("a command the server refuses exits 1 with the gRPC code name and the server's message", async () => {
    const wrong = await ctl(["--target", target, "send", tempJson(germinateJson("ctl-seed-3"))], { ESPER_LEYLINE_SECRET: "not-the-secret" });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("ApplyCommand failed: PERMISSION_DENIED: invalid_signature");
    const invalid = await ctl(["--target", target, "--json", "send", tempJson({ ...germinateJson(""), targetSeedId: "" })], signed);
    expect(invalid.code).toBe(1);
    expect(JSON.parse(invalid.stderr)).toMatchObject({ error: { rpc: "ApplyCommand", code: "INVALID_ARGUMENT" } });
    const seeds = JSON.parse((await ctl(["--target", target, "--json", "seeds"])).stdout) as { seeds?: { seedId: string }[] };
    expect((seeds.seeds ?? []).map((s) => s.seedId)).not.toContain("ctl-seed-3");
  });

  it("send without a secret, with a missing file or with malformed JSON exits 2 and sends nothing", async () => {
    const before = (await ctl(["--target", target, "--json", "status"])).stdout;
    const noSecret = await ctl(["--target", target, "send", tempJson(germinateJson("ctl-seed-4"))]);
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toContain("ESPER_LEYLINE_SECRET");
    const missing = await ctl(["--target", target, "send", "/nonexistent/command.json"], signed);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("ENOENT");
    const malformed = await ctl(["--target", target, "send", tempJson(undefined, "{ not json")], signed);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain("not valid JSON");
    expect((await ctl(["--target", target, "--json", "status"])).stdout).toBe(before);
  });

  it("drain prints the queued packets and the remaining count", async () => {
    await ctl(["--target", target, "send", tempJson(germinateJson("ctl-seed-5"))], signed);
    await call(client, client.finalizeStep, { stepIndex: 1n });
    const json = JSON.parse((await ctl(["--target", target, "--json", "drain", "--max", "1"])).stdout) as { packets: unknown[]; remainingPackets?: string };
    expect(json.packets).toHaveLength(1);
    const human = await ctl(["--target", target, "drain"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/\d+ packet\(s\); 0 remaining/);
  });

  it("watch --count N prints N live packets (one JSON object per line) and exits 0", async () => {
    const child = ctlProcess(["--target", target, "--json", "watch", "--count", "2"]);
    let stdout = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = once(child, "exit") as Promise<[number | null]>;
    let done = false;
    void exited.then(() => (done = true));
    // Packets emitted before the watcher subscribed are not its: keep emitting until it has two.
    for (let step = 0; !done && step < 100; step++) {
      await ctl(["--target", target, "send", tempJson(germinateJson(`ctl-watch-${step}`))], signed);
      await call(client, client.finalizeStep, { stepIndex: BigInt(100 + step) });
    }
    const [code] = await exited;
    expect(code).toBe(0);
    const lines = stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(JSON.parse(line)).toHaveProperty("packetId");
  });

  it("an unreachable target exits 1 with UNAVAILABLE", async () => {
    const port = await freePort();
    const result = await ctl(["--target", `127.0.0.1:${port}`, "--timeout", "5", "status"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("GetStatus failed: UNAVAILABLE");
  });
});

describe("kasminactl over mutual TLS with a bearer token", () => {
  let dir: string;
  let secure: KasminaProcess;
  let secureTarget: string;
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { stdio: "pipe" });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "kasminactl-tls-"));
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kasminactl-test-ca", "-keyout", file("ca.key"), "-out", file("ca.pem"));
    for (const [name, san] of [["server", "IP:127.0.0.1"], ["client", "DNS:operator"]] as const) {
      openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${name}`, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`));
      writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\n`);
      openssl("x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", file(`${name}.ext`), "-out", file(`${name}.pem`));
    }
    secure = spawnKasmina({
      KASMINA_TLS_CERT: file("server.pem"),
      KASMINA_TLS_KEY: file("server.key"),
      KASMINA_TLS_CLIENT_CA: file("ca.pem"),
      KASMINA_AUTH_TOKEN: "operator-token",
    });
    secureTarget = await secure.address();
  });

  afterAll(async () => {
    expect((await secure?.stop())?.code).toBe(0);
  });

  it("connects with --ca, --cert, --key and --token (or KASMINA_AUTH_TOKEN)", async () => {
    const tls = ["--target", secureTarget, "--ca", file("ca.pem"), "--cert", file("client.pem"), "--key", file("client.key")];
    expect((await ctl([...tls, "--token", "operator-token", "status"])).code).toBe(0);
    expect((await ctl([...tls, "status"], { KASMINA_AUTH_TOKEN: "operator-token" })).code).toBe(0);
    const noToken = await ctl([...tls, "status"]);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain("GetStatus failed: UNAUTHENTICATED");
  });

  it("without a client certificate or in plaintext the call fails with exit 1", async () => {
    const noCert = await ctl(["--target", secureTarget, "--ca", file("ca.pem"), "--token", "operator-token", "--timeout", "5", "status"]);
    expect(noCert.code).toBe(1);
    expect(noCert.stderr).toContain("GetStatus failed: UNAVAILABLE");
    const plaintext = await ctl(["--target", secureTarget, "--token", "operator-token", "--timeout", "5", "status"]);
    expect(plaintext.code).toBe(1);
    const halfPair = await ctl(["--target", secureTarget, "--cert", file("client.pem"), "status"]);
    expect(halfPair.code).toBe(2);
  });
});

describe("regression: a -0 parameter in a command file", () => {
  it("is sent as the +0 the server decodes, so its signature verifies", async () => {
    // JSON.stringify writes -0 as 0: the file text keeps the sign.
    const raw = tempJson(undefined, JSON.stringify(germinateJson("ctl-minus-zero")).replace('"blueprintId":"BP001"', '"blueprintId":"BP001","parameters":{"lr":-0}'));
    const sent = await ctl(["--target", target, "send", raw], signed);
    expect(sent.stderr).toBe("");
    expect(sent.code).toBe(0);
  });
});
