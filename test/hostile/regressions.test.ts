// Findings of the hostile-input suite, each pinned by the smallest request sequence that showed it.
import { afterEach, describe, expect, it } from "vitest";
import { SeedOperation } from "../../src/leyline.js";
import { MAX_ALPHA_STEPS } from "../../src/kasmina/lifecycle-advance.js";
import { call } from "../support/grpc-clients.js";
import { germinate, seedOp, startHarness, type Harness } from "../support/harness.js";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

describe("regression (hostile seed 158501209): AdvanceAlpha past 2^32 total steps answered INTERNAL", () => {
  it("saturates alpha_steps at the uint32 maximum, so every answer serializes", async () => {
    harness = await startHarness();
    const { client, clock } = harness;
    await call(client, client.registerHost, { parameters: [{ key: "h", shape: [4], trainable: true, elementBytes: 4 }] });
    await call(client, client.applyCommand, { command: germinate(clock, "s") });
    expect((await call(client, client.applyCommand, { command: seedOp(clock, "s", SeedOperation.SEED_OP_START_GRAFTING) })).seed?.stage).toBe(4); // BLENDING
    const first = await call(client, client.advanceAlpha, { seedId: "s", steps: 4_000_000_000 });
    expect(first.alphaSteps).toBeGreaterThanOrEqual(4_000_000_000);
    // Before the fix the sum (8e9) no longer fitted the response's uint32 and the call failed with INTERNAL.
    const second = await call(client, client.advanceAlpha, { seedId: "s", steps: 4_000_000_000 });
    expect(second.alphaSteps).toBe(MAX_ALPHA_STEPS);
    expect(second.alpha).toBe(1);
    expect((await call(client, client.advanceAlpha, { seedId: "s", steps: 1 })).alphaSteps).toBe(MAX_ALPHA_STEPS);
  });
});
