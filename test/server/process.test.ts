// The real entry point as a child process: ready line, health over the socket, bad configuration,
// and SIGTERM/SIGINT draining to exit 0.
import { mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { healthStatus } from "../support/grpc-clients.js";
import { spawnKasmina } from "../support/process.js";

/** tfjs-node needs libtensorflow, which its installer downloads; where it is absent it cannot load. */
function tfjsNodeInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve("@tensorflow/tfjs-node");
    return true;
  } catch {
    return false;
  }
}

describe("kasmina process", () => {
  it("prints the ready line, serves health, and exits 0 on SIGTERM", async () => {
    const kasmina = spawnKasmina({ ESPER_LEYLINE_SECRET: "s" });
    const match = /^kasmina listening on 127\.0\.0\.1:(\d+) \(isolation backend: (\S+)\)$/.exec(await kasmina.ready());
    expect(match).not.toBeNull();
    expect(match?.[2]).toBe("js");
    expect(await healthStatus(await kasmina.address())).toBe("SERVING");
    expect(await kasmina.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(kasmina.stderr()).toContain("SIGTERM received, draining");
  });

  it("exits 0 on SIGINT and never prints the secret", async () => {
    const kasmina = spawnKasmina({ ESPER_LEYLINE_SECRET: "do-not-print-me" });
    await kasmina.ready();
    expect(await kasmina.stop("SIGINT")).toEqual({ code: 0, signal: null });
    expect(kasmina.output()).not.toContain("do-not-print-me");
  });

  it("warns exactly once when no secret is configured", async () => {
    const kasmina = spawnKasmina({});
    await kasmina.ready();
    await kasmina.stop();
    expect(kasmina.stderr().match(/ESPER_LEYLINE_SECRET is not set/g)).toHaveLength(1);
  });

  it("an explicitly requested isolation backend that cannot load fails start-up, naming it", async () => {
    const kasmina = spawnKasmina({ KASMINA_ISOLATION_BACKEND: "tensorflow" });
    if (tfjsNodeInstalled()) {
      expect(await kasmina.ready()).toContain("(isolation backend: tensorflow)");
      await kasmina.stop();
      return;
    }
    expect((await kasmina.exited()).code).toBe(2);
    expect(kasmina.stderr()).toContain('KASMINA_ISOLATION_BACKEND: isolation backend "tensorflow" is not available');
  });

  it("a blueprint catalog that does not parse fails start-up, naming the variable", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kasmina-catalog-"));
    const catalog = join(dir, "catalog.json");
    writeFileSync(catalog, JSON.stringify({ blueprints: { BP9: { artifact_ref: "x", parameters: [{ name: "w", shape: [-1] }] } } }));
    const kasmina = spawnKasmina({ KASMINA_BLUEPRINT_CATALOG: catalog });
    expect((await kasmina.exited()).code).toBe(2);
    expect(kasmina.stderr()).toContain(`KASMINA_BLUEPRINT_CATALOG: ${catalog}: blueprint BP9 parameter #0 (w): shape must be an array of non-negative integers`);
  });

  it("fails start-up with a message naming a bad variable", async () => {
    const kasmina = spawnKasmina({ KASMINA_BUS: "kafka" });
    expect((await kasmina.exited()).code).toBe(2);
    expect(kasmina.stderr()).toContain("KASMINA_BUS: expected one of none, memory, redis");
  });
});
