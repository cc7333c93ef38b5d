// `buf breaking` guards the released contract (proto/baseline.binpb), not just the last commit:
// a break made in one commit of a multi-commit change and kept must still fail CI.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { repoRoot } from "../../src/repo-root.js";

const root = repoRoot();
const buf = join(root, "node_modules", ".bin", "buf");
const baseline = join(root, "proto", "baseline.binpb");
const KASMINA = join("proto", "esper", "kasmina", "v1", "kasmina.proto");

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the buf module with one edit applied, checked against the committed baseline. */
function breakingAfter(edit: (proto: string) => string): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), "kasmina-breaking-"));
  dirs.push(dir);
  cpSync(join(root, "proto"), join(dir, "proto"), { recursive: true });
  cpSync(join(root, "buf.yaml"), join(dir, "buf.yaml"));
  const path = join(dir, KASMINA);
  const before = readFileSync(path, "utf8");
  const after = edit(before);
  writeFileSync(path, after);
  const run = spawnSync(buf, ["breaking", "--against", baseline], { cwd: dir, encoding: "utf8" });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe("buf breaking against the released baseline", () => {
  it("the baseline is a buf image of this module (built by `npm run contract:release`)", () => {
    const listing = execFileSync(buf, ["build", baseline, "-o", "-#format=json"], { cwd: root, encoding: "utf8" });
    expect(listing).toContain("esper.kasmina.v1");
  });

  it("today's contract passes", () => {
    expect(breakingAfter((proto) => proto)).toMatchObject({ status: 0 });
  });

  it("a deleted field fails", () => {
    const result = breakingAfter((proto) => proto.replace("  uint64 elements_processed = 9;\n", ""));
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/Previously present field "9" with name "elements_processed" on message "IsolationReport" was deleted/);
  });

  it("a renamed RPC fails", () => {
    const result = breakingAfter((proto) => proto.replace("rpc GetStatus(GetStatusRequest)", "rpc GetServiceStatus(GetStatusRequest)"));
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/Previously present RPC "GetStatus" on service "KasminaService" was deleted/);
  });
});
