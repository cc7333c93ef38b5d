// A real Python training controller (grpcio, protobuf generated from the same buf module) drives
// the built service over a socket: Python's deterministic signing, chunked gradients, telemetry.
import { execFileSync, spawn } from "node:child_process";
import { spawnKasmina } from "../support/process.js";
import { once } from "node:events";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../src/repo-root.js";

const PYTHON = "/usr/bin/python3";

describe("examples/python/controller.py", () => {
  it("runs a training-controller cycle against the service", async () => {
    const root = repoRoot();
    if (!existsSync(PYTHON)) throw new Error("Debian's /usr/bin/python3 is needed (apt-get install python3-grpcio python3-protobuf)");
    const gen = mkdtempSync(join(tmpdir(), "kasmina-py-"));
    execFileSync("bash", [join(root, "examples/python/generate.sh"), gen], { stdio: "pipe" });

    const secret = "python-interop-secret";
    const kasmina = spawnKasmina({ ESPER_LEYLINE_SECRET: secret });
    try {
      const address = await kasmina.address();
      const child = spawn(PYTHON, [join(root, "examples/python/controller.py"), address], {
        env: { PATH: process.env["PATH"] ?? "", PYTHONPATH: gen, ESPER_LEYLINE_SECRET: secret },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const [code] = (await once(child, "exit")) as [number];
      expect(code, stderr).toBe(0);
      const summary = JSON.parse(stdout) as Record<string, unknown>;
      expect(summary).toMatchObject({
        germinated: "SEED_STAGE_TRAINING",
        alpha: 0.5,
        exported: { "seed-py": "SEED_STAGE_BLENDING" },
        packets: ["kasmina-seed-seed-py-0"],
        unsigned: ["PERMISSION_DENIED", "missing_signature"],
        culled_seed_present: false,
        rollback: { reason: "retired", seed_id: "seed-py", stage: "SEED_STAGE_DORMANT" },
      });
      expect(summary["germinate_events"]).toEqual(expect.arrayContaining(["seed_operation", "gate_event", "tamiyo_annotations"]));
      // The tied parameter gives a dot product of 1+4+9+16 = 30: not isolated, one violation.
      expect(summary["isolation"]).toEqual({ isolated: false, dot: 30, violations: 1 });
      expect((summary["bad_chunk"] as string[])[0]).toBe("INVALID_ARGUMENT");
    } finally {
      await kasmina.stop();
    }
  });
});
