// Regression tests for the hostile review's configuration findings (issue 10 item 6): the nonce
// ledger covers the freshness window, blank and world-readable secrets, an empty client CA file.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { CommandType } from "../../src/leyline.js";
import { call } from "../support/grpc-clients.js";
import { command, startHarness, type Harness } from "../support/harness.js";
import { spawnKasmina } from "../support/process.js";

const dir = mkdtempSync(join(tmpdir(), "kasmina-config-hardening-"));

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

describe("With KASMINA_NONCE_TTL_SECONDS=1 one signed EMERGENCY command was accepted three times", () => {
  it("refuses a nonce TTL shorter than the freshness window plus the future skew, naming both variables", () => {
    const attempt = () => loadConfig({ KASMINA_NONCE_TTL_SECONDS: "1" });
    expect(attempt).toThrowError(ConfigError);
    expect(attempt).toThrowError(/^KASMINA_NONCE_TTL_SECONDS: .*KASMINA_FRESHNESS_WINDOW_SECONDS \(60 s\) plus the 5 s future skew; set it above 65 \(for example 66\)/);
    expect(() => loadConfig({ KASMINA_NONCE_TTL_SECONDS: "30", KASMINA_FRESHNESS_WINDOW_SECONDS: "30" })).toThrowError(/above 35/);
    // Exactly window + skew is not enough: freshness includes its last instant, the ledger does not.
    expect(() => loadConfig({ KASMINA_NONCE_TTL_SECONDS: "65" })).toThrowError(/above 65/);
    expect(loadConfig({ KASMINA_NONCE_TTL_SECONDS: "66" }).nonceTtlSeconds).toBe(66);
  });

  it("start-up of the built service fails with exit code 2 and the message", async () => {
    const child = spawnKasmina({ KASMINA_NONCE_TTL_SECONDS: "1" });
    const exit = await child.exited();
    expect(exit.code).toBe(2);
    expect(child.stderr()).toMatch(/KASMINA_NONCE_TTL_SECONDS: .*KASMINA_FRESHNESS_WINDOW_SECONDS/);
  });

  it("accepts a signed EMERGENCY command once, however the clock moves within its freshness (smallest allowed TTL)", async () => {
    harness = await startHarness({ KASMINA_NONCE_TTL_SECONDS: "66" });
    const { client, clock } = harness;
    // Issued 5 s in the future: the latest a fresh command can be, so it stays fresh longest.
    const issuedAt = { seconds: BigInt(Math.floor(clock.wallMs() / 1000) + 5), nanos: 0 };
    const emergency = command(clock, { commandType: CommandType.COMMAND_EMERGENCY, issuedAt });
    const outcomes: string[] = [];
    for (let t = 0; t <= 70; t += 1) {
      const result = await call(client, client.applyCommand, { command: emergency }).then(
        () => "ok",
        (e: ServiceError) => (e.code === status.PERMISSION_DENIED ? e.details.split(":")[0] : `code ${e.code}`),
      );
      outcomes.push(result);
      clock.advance(1);
    }
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(1);
    expect(outcomes[0]).toBe("ok");
    expect(new Set(outcomes.slice(1))).toEqual(new Set(["nonce_replayed", "stale_command"]));
  });
});

describe("A whitespace-only secret is accepted; a secret file loses only one newline and may be world-readable", () => {
  it("refuses a blank ESPER_LEYLINE_SECRET and a blank secret file", () => {
    expect(() => loadConfig({ ESPER_LEYLINE_SECRET: "  \t " })).toThrowError(/^ESPER_LEYLINE_SECRET: is blank/);
    const blank = join(dir, "blank");
    writeFileSync(blank, " \n\n");
    chmodSync(blank, 0o600);
    expect(() => loadConfig({ ESPER_LEYLINE_SECRET_FILE: blank })).toThrowError(/^ESPER_LEYLINE_SECRET_FILE: .* is empty or blank/);
  });

  it("trims all trailing whitespace of a secret file and warns when group or others may read it", () => {
    const file = join(dir, "secret");
    writeFileSync(file, "s3cret \r\n\t\n\n");
    chmodSync(file, 0o644);
    const open = loadConfig({ ESPER_LEYLINE_SECRET_FILE: file });
    expect(open.secret).toBe("s3cret");
    expect(open.warnings).toEqual([expect.stringMatching(/^ESPER_LEYLINE_SECRET_FILE: .* is readable by group or others \(mode 644\); chmod 600 it$/)]);
    expect(open.warnings.join("")).not.toContain("s3cret");
    chmodSync(file, 0o600);
    expect(loadConfig({ ESPER_LEYLINE_SECRET_FILE: file }).warnings).toEqual([]);
  });

  it("the built service logs the warning at start-up", async () => {
    const file = join(dir, "secret-process");
    writeFileSync(file, "another-secret\n");
    chmodSync(file, 0o640);
    const child = spawnKasmina({ ESPER_LEYLINE_SECRET_FILE: file });
    try {
      await child.ready();
      expect(child.stderr()).toMatch(/configuration warning: ESPER_LEYLINE_SECRET_FILE: .* \(mode 640\)/);
      expect(child.output()).not.toContain("another-secret");
    } finally {
      expect((await child.stop()).code).toBe(0);
    }
  });
});

describe("An unparsable KASMINA_TLS_CLIENT_CA starts cleanly and then refuses every client", () => {
  it("fails start-up naming KASMINA_TLS_CLIENT_CA when the file holds no certificate, or a broken one", () => {
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ca", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem")], { stdio: "pipe" });
    const tls = { KASMINA_TLS_CERT: join(dir, "c.pem"), KASMINA_TLS_KEY: join(dir, "k.pem") };
    const empty = join(dir, "empty-ca.pem");
    writeFileSync(empty, "this is not a certificate\n");
    expect(() => loadConfig({ ...tls, KASMINA_TLS_CLIENT_CA: empty })).toThrowError(/^KASMINA_TLS_CLIENT_CA: .* holds no PEM certificate/);
    const broken = join(dir, "broken-ca.pem");
    writeFileSync(broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    expect(() => loadConfig({ ...tls, KASMINA_TLS_CLIENT_CA: broken })).toThrowError(/^KASMINA_TLS_CLIENT_CA: .* does not parse/);
    expect(loadConfig({ ...tls, KASMINA_TLS_CLIENT_CA: join(dir, "c.pem") }).tlsClientCa).toBe(join(dir, "c.pem"));
  });
});
