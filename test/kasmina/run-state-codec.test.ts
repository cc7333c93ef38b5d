// A run's state as stored items (DESIGN §2.2): a manager rebuilt from its items behaves as the one it
// was captured from, and each change writes only the items it touched.
import { describe, expect, it } from "vitest";
import { RunPersistence } from "../../src/kasmina/run-state-codec.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { SeedManager } from "../../src/kasmina/seed-manager.js";
import { CommandVerifier } from "../../src/kasmina/command-verifier.js";
import { CommandType, SeedOperation } from "../../src/leyline.js";
import { makeManager, RecordingIsolation, SECRET, seedCommand, signed, SpyRuntime } from "./manager-support.js";

const HOST = [{ key: "host.w", shape: [4], trainable: true, elementBytes: 4 }];

/** The manager's observable state, as the RPCs report it. */
function view(manager: SeedManager) {
  return {
    seeds: manager.exportSeedStates(),
    epoch: manager.currentEpoch,
    violations: manager.globalViolationCount,
    kernelBreaker: manager.kernelBreaker.snapshot(),
    isolationBreaker: manager.isolationBreaker.snapshot(),
    kernelCache: manager.memory.kernelCache.stats(),
    telemetryCache: manager.memory.telemetryCache.stats(),
    gpuCache: manager.gpuCacheStats(),
    packets: manager.packets.peek(),
    dropped: manager.packets.dropped,
    rollback: manager.rollbackPayload("gone"),
    gc: manager.memory.exportCounters(),
    contexts: manager.contextCount,
  };
}

describe("RunPersistence", () => {
  it("a manager restored from the captured items reports and behaves the same, on another clock origin", () => {
    const isolation = new RecordingIsolation();
    const { manager, clock } = makeManager({ isolation, pacing: "driven" });
    manager.registerHost(HOST);
    manager.registerTeacher([{ key: "teacher.w", shape: [8], trainable: true, elementBytes: 4 }], []);
    manager.handleCommand(seedCommand(clock, "s", SeedOperation.SEED_OP_GERMINATE));
    // Created after "s" but sorting before it: the restored order must be the creation order.
    manager.handleCommand(seedCommand(clock, "b-later", SeedOperation.SEED_OP_GERMINATE));
    manager.handleCommand(seedCommand(clock, "gone", SeedOperation.SEED_OP_GERMINATE));
    manager.handleCommand(seedCommand(clock, "gone", SeedOperation.SEED_OP_CULL));
    manager.updateEpoch(10);
    manager.finalizeStep(1n);
    manager.recordIsolationViolation("ephemeral-seed"); // an ephemeral context with queued events
    for (let i = 0; i < 3; i++) manager.recordIsolationViolation("s"); // opens the isolation breaker
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_OPTIMIZER, payload: { $case: "optimizerAdjustment", value: { optimizerId: "adam", hyperparameters: new Map() } } }));
    // Sorted by key, as the SQLite store loads them.
    const items = new Map([...new RunPersistence(manager, clock).capture().puts].sort(([a], [b]) => (a < b ? -1 : 1)));
    const before = view(manager);

    const later = new FakeClock(77, clock.wall);
    const restoredIsolation = new RecordingIsolation();
    const restored = new SeedManager({ runtime: new SpyRuntime(), clock: later, verifier: new CommandVerifier({ secret: SECRET, clock: later }), pacing: "driven", isolation: restoredIsolation });
    const persistence = new RunPersistence(restored, later);
    persistence.restore(items);
    const after = view(restored);
    expect(before.isolationBreaker.openUntil).not.toBeNull();
    // Deadlines moved to the new monotonic origin; everything else is equal.
    const shift = later.mono - clock.mono;
    expect(after.isolationBreaker.openUntil).toBeCloseTo((before.isolationBreaker.openUntil ?? 0) + shift, 6);
    expect({ ...after, isolationBreaker: { ...after.isolationBreaker, openUntil: null } }).toEqual({ ...before, isolationBreaker: { ...before.isolationBreaker, openUntil: null } });
    expect(restored.isEphemeral("ephemeral-seed")).toBe(true);
    expect(restored.validateParameters("s", ["s/w", "s/b"])).toBe(true);
    expect(restored.validateParameters("s", ["teacher.w"])).toBe(false);
    // The attached seed got a fresh isolation session (accumulators are not durable).
    expect(restoredIsolation.opened.map((o) => o.seedId)).toEqual(["s", "b-later"]);
    expect(after.seeds.map((seed) => seed.seedId)).toEqual(["s", "b-later", "ephemeral-seed"]);
    // Nothing new to write right after a restore.
    expect(persistence.capture()).toEqual({ puts: new Map(), deletes: [] });
    // Both flush the same queued events next step.
    expect(restored.finalizeStep(2n)).toBe(manager.finalizeStep(2n));
  });

  it("a change writes only what it touched: one new queued event, not the queue; drained packets are deleted", () => {
    const { manager, clock } = makeManager();
    const persistence = new RunPersistence(manager, clock);
    for (let i = 0; i < 5; i++) manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_OPTIMIZER, payload: { $case: "optimizerAdjustment", value: { optimizerId: `o${i}`, hyperparameters: new Map() } } }));
    persistence.capture();
    manager.handleCommand(signed(clock, { commandType: CommandType.COMMAND_OPTIMIZER, payload: { $case: "optimizerAdjustment", value: { optimizerId: "o5", hyperparameters: new Map() } } }));
    const delta = persistence.capture();
    expect([...delta.puts.keys()].sort()).toEqual(["gq/000000000005", "meta"]);
    expect(delta.deletes).toEqual([]);
    manager.finalizeStep(1n);
    const flushed = persistence.capture();
    expect(flushed.deletes.filter((k) => k.startsWith("gq/"))).toHaveLength(6);
    expect([...flushed.puts.keys()].filter((k) => k.startsWith("packet/"))).toEqual(["packet/000000000000"]);
    manager.packets.drain(0);
    expect(persistence.capture().deletes).toEqual(["packet/000000000000"]);
  });
});
