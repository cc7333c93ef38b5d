// A SeedManager over a spy runtime and a fake clock, with a signer, for domain-level tests.
import { CommandVerifier, signCommand } from "../../src/kasmina/command-verifier.js";
import type { FetchedKernel, Kernel, KernelRuntime } from "../../src/kasmina/kernel-runtime.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { SeedManager, type IsolationPort, type IsolationSessionHandle, type SeedManagerOptions } from "../../src/kasmina/seed-manager.js";
import { AdaptationCommand, CommandType, type SeedOperation, type TelemetryEvent, type TelemetryPacket } from "../../src/leyline.js";

export const kernelFor = (blueprintId: string, names = ["w", "b"]): Kernel => ({
  blueprintId,
  artifactRef: `test://${blueprintId}`,
  checksum: "",
  parameters: names.map((name) => ({ name, shape: [2, 2], trainable: true, elementBytes: 4 })),
});

/** Records every fetch; latency per blueprint; blueprints listed in `failing` throw. */
export class SpyRuntime implements KernelRuntime {
  readonly calls: string[] = [];
  constructor(
    public latencies: Record<string, number> = {},
    public failing = new Set<string>(),
  ) {}
  fetchKernel(blueprintId: string): FetchedKernel {
    this.calls.push(blueprintId);
    if (this.failing.has(blueprintId)) throw new Error(`blueprint ${blueprintId} unavailable`);
    return { kernel: kernelFor(blueprintId), latencyMs: this.latencies[blueprintId] ?? 1 };
  }
}

export const SECRET = "unit-secret";

export function makeManager(overrides: Partial<SeedManagerOptions> = {}): { manager: SeedManager; clock: FakeClock; runtime: SpyRuntime } {
  const clock = new FakeClock(1000, 1_790_000_000_000);
  const runtime = new SpyRuntime();
  const manager = new SeedManager({
    runtime,
    clock,
    verifier: new CommandVerifier({ secret: SECRET, clock }),
    pacing: "immediate",
    ...overrides,
  });
  return { manager, clock, runtime };
}

let n = 0;
export function signed(clock: FakeClock, fields: Partial<AdaptationCommand>): AdaptationCommand {
  n += 1;
  const cmd = AdaptationCommand.fromPartial({
    commandId: `unit-${n}`,
    issuedAt: { seconds: BigInt(Math.floor(clock.wallMs() / 1000)), nanos: 0 },
    ...fields,
  });
  cmd.annotations.set("signature", signCommand(cmd, SECRET));
  return cmd;
}

export const seedCommand = (
  clock: FakeClock,
  seedId: string,
  operation: SeedOperation,
  blueprintId = "BP001",
  annotations: Record<string, string> = {},
  parameters: Record<string, number> = {},
): AdaptationCommand =>
  signed(clock, {
    commandType: CommandType.COMMAND_SEED,
    targetSeedId: seedId,
    annotations: new Map(Object.entries(annotations)),
    payload: { $case: "seedOperation", value: { operation, blueprintId, parameters: new Map(Object.entries(parameters)) } },
  });

export const names = (events: readonly TelemetryEvent[]): string[] => events.map((e) => e.description);
export const find = (events: readonly TelemetryEvent[], description: string): TelemetryEvent[] =>
  events.filter((e) => e.description === description);
export const allEvents = (packets: readonly TelemetryPacket[]): TelemetryEvent[] => packets.flatMap((p) => p.events);

/** An isolation session double that records the manager's calls (a real IsolationSessionHandle). */
export class RecordingSession implements IsolationSessionHandle {
  collecting = true;
  readonly log: string[] = [];
  constructor(private readonly statsValue = { hostNorm: 0, seedNorm: 0, dotProduct: 0 }) {}
  enableCollection(): void {
    this.collecting = true;
    this.log.push("enable");
  }
  disableCollection(): void {
    this.collecting = false;
    this.log.push("disable");
  }
  reset(): void {
    this.log.push("reset");
  }
  close(): void {
    this.log.push("close");
  }
  stats(): { hostNorm: number; seedNorm: number; dotProduct: number } {
    return { ...this.statsValue };
  }
}

/** Opens RecordingSessions and remembers which seed each belongs to. */
export class RecordingIsolation implements IsolationPort {
  readonly opened: { seedId: string; session: RecordingSession }[] = [];
  constructor(private readonly stats?: { hostNorm: number; seedNorm: number; dotProduct: number }) {}
  get sessions(): RecordingSession[] {
    return this.opened.map((o) => o.session);
  }
  openSession(seedId: string): IsolationSessionHandle {
    const session = new RecordingSession(this.stats);
    this.opened.push({ seedId, session });
    return session;
  }
}
