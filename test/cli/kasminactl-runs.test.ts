// kasminactl runs / close-run / --run against the real built server, as DESIGN §2.1 defines
// ListTrainingRuns, CloseTrainingRun and the kasmina-training-run metadata key.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECRET } from "../support/harness.js";
import { spawnKasmina, type KasminaProcess } from "../support/process.js";
import { ctl, germinateJson, tempJson } from "./ctl.js";

let kasmina: KasminaProcess;
let target: string;
const signed = { ESPER_LEYLINE_SECRET: SECRET };

beforeAll(async () => {
  kasmina = spawnKasmina({ ESPER_LEYLINE_SECRET: SECRET, KASMINA_STATE: "memory" });
  target = await kasmina.address();
});

afterAll(async () => {
  expect((await kasmina?.stop())?.code).toBe(0);
});

interface RunSummary {
  trainingRunId: string;
  seeds?: number;
}

describe("kasminactl and training runs (DESIGN §2.1)", () => {
  it("--run selects the run: a command sent there lands there, and status reports that run", async () => {
    const sent = await ctl(["--target", target, "--run", "ctl-run-a", "send", tempJson(germinateJson("run-seed-1"))], signed);
    expect(sent.stderr).toBe("");
    expect(sent.code).toBe(0);
    const status = JSON.parse((await ctl(["--target", target, "--run", "ctl-run-a", "--json", "status"])).stdout) as { trainingRun: string; seeds: number };
    expect(status).toMatchObject({ trainingRun: "ctl-run-a", seeds: 1 });
    const other = JSON.parse((await ctl(["--target", target, "--json", "seeds"])).stdout) as { seeds?: { seedId: string }[] };
    expect((other.seeds ?? []).map((s) => s.seedId)).not.toContain("run-seed-1");
    const bad = await ctl(["--target", target, "--run", "not a run id!", "status"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("INVALID_ARGUMENT");
    expect(bad.stderr).toContain("kasmina-training-run");
  });

  it("runs lists every run with its seeds, as a table and as JSON", async () => {
    await ctl(["--target", target, "--run", "ctl-run-b", "send", tempJson(germinateJson("run-seed-2"))], signed);
    await ctl(["--target", target, "--run", "ctl-run-b", "send", tempJson(germinateJson("run-seed-3"))], signed);
    const human = await ctl(["--target", target, "runs"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^RUN\s+SEEDS\s+EPOCH\s+ISOLATION BREAKER\s+VIOLATIONS\s+LAST ACTIVITY$/m);
    expect(human.stdout).toMatch(/^ctl-run-b\s+2\s+0\s+CLOSED\s+0\s+\d{4}-/m);
    const json = JSON.parse((await ctl(["--target", target, "--json", "runs"])).stdout) as { runs: RunSummary[] };
    expect(json.runs).toContainEqual(expect.objectContaining({ trainingRunId: "ctl-run-a", seeds: 1 }));
    expect(json.runs).toContainEqual(expect.objectContaining({ trainingRunId: "ctl-run-b", seeds: 2 }));
  });

  it("close-run retires the run's seeds and removes it; closing it again exits 1 with NOT_FOUND", async () => {
    const closed = await ctl(["--target", target, "close-run", "ctl-run-b"]);
    expect(closed.stderr).toBe("");
    expect(closed.code).toBe(0);
    expect(closed.stdout).toContain("training run ctl-run-b closed: 2 seed(s) retired");
    const json = JSON.parse((await ctl(["--target", target, "--json", "runs"])).stdout) as { runs: RunSummary[] };
    expect(json.runs.map((r) => r.trainingRunId)).not.toContain("ctl-run-b");
    const again = await ctl(["--target", target, "close-run", "ctl-run-b"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("CloseTrainingRun failed: NOT_FOUND");
    expect((await ctl(["--target", target, "close-run"])).code).toBe(2);
  });
});
