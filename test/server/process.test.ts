// The real entry point as a child process: ready line, health over the socket, bad configuration,
// and SIGTERM draining to exit 0.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../src/repo-root.js";
import { healthStatus } from "../support/grpc-clients.js";

// The built entry point, exactly what `npm start` runs (`npm test` builds first).
const MAIN = join(repoRoot(), "dist", "src", "main.js");

function startMain(env: Record<string, string>): ChildProcess {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build (npm test does it first)`);
  return spawn(process.execPath, [MAIN], {
    cwd: repoRoot(),
    env: { PATH: process.env["PATH"] ?? "", KASMINA_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

async function readyLine(child: ChildProcess): Promise<string> {
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within 30 s; stdout: ${out}`)), 30_000);
    child.stdout?.on("data", (data: Buffer) => {
      out += data.toString();
      const line = out.split("\n").find((l) => l.startsWith("kasmina listening on "));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once("exit", (code) => reject(new Error(`exited with ${code} before ready; stdout: ${out}`)));
  });
}

describe("kasmina process", () => {
  it("prints the ready line, serves health, and exits 0 on SIGTERM", async () => {
    const child = startMain({ ESPER_LEYLINE_SECRET: "s" });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const line = await readyLine(child);
    const match = /^kasmina listening on 127\.0\.0\.1:(\d+) \(isolation backend: (\S+)\)$/.exec(line);
    expect(match, line).not.toBeNull();
    const address = `127.0.0.1:${match?.[1] ?? ""}`;
    expect(match?.[2]).toBe("js");
    expect(await healthStatus(address)).toBe("SERVING");
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const [code, signal] = (await exited) as [number | null, string | null];
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(stderr).toContain("SIGTERM received, draining");
    expect(stderr).not.toContain("s3cret");
  });

  it("warns once without a secret, and never prints the secret when it has one", async () => {
    const child = startMain({ ESPER_LEYLINE_SECRET: "do-not-print-me" });
    let output = "";
    child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    await readyLine(child);
    child.kill("SIGINT");
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(0);
    expect(output).not.toContain("do-not-print-me");

    const bare = startMain({});
    let warn = "";
    bare.stderr?.on("data", (d: Buffer) => (warn += d.toString()));
    await readyLine(bare);
    bare.kill("SIGTERM");
    await once(bare, "exit");
    expect(warn.match(/ESPER_LEYLINE_SECRET is not set/g)).toHaveLength(1);
  });

  it("fails start-up with a message naming a bad variable", async () => {
    const child = startMain({ KASMINA_BUS: "kafka" });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(2);
    expect(stderr).toContain("KASMINA_BUS: expected one of none, memory, redis");
  });
});
