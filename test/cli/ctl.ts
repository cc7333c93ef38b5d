// Runs the built kasminactl (dist/src/cli/kasminactl.js, what the package's bin entry points at)
// as a child process, as an operator's shell would.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../../src/repo-root.js";

export const CTL = join(repoRoot(), "dist", "src", "cli", "kasminactl.js");

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function ctl(args: readonly string[], env: Record<string, string> = {}): Promise<CtlResult> {
  if (!existsSync(CTL)) throw new Error(`${CTL} is missing: run npm run build (npm test does it first)`);
  return new Promise((resolve) => {
    execFile(process.execPath, [CTL, ...args], { env: { PATH: process.env["PATH"] ?? "", ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

export function ctlProcess(args: readonly string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [CTL, ...args], { env: { PATH: process.env["PATH"] ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
}

export function tempJson(value: unknown, raw?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "kasminactl-"));
  const path = join(dir, "command.json");
  writeFileSync(path, raw ?? JSON.stringify(value));
  return path;
}

/** A germinate command as an operator would write it: proto3 JSON, no id, no time, no signature. */
export const germinateJson = (seedId: string): Record<string, unknown> => ({
  version: 1,
  commandType: "COMMAND_SEED",
  targetSeedId: seedId,
  issuedBy: "operator",
  seedOperation: { operation: "SEED_OP_GERMINATE", blueprintId: "BP001" },
});
