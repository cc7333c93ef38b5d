// An in-process Kasmina (app + real gRPC server on port 0) with a fake clock, and a signer that
// signs commands exactly as a Python sender does (deterministic encoding, HMAC-SHA256, base64).
import { createApp, type App } from "../../src/app.js";
import { loadConfig, type KasminaConfig } from "../../src/config.js";
import { signCommand } from "../../src/kasmina/command-verifier.js";
import { FakeClock, noopMetrics, type MetricsPort, type TracingPort } from "../../src/kasmina/ports.js";
import type { CircuitBreakerState } from "../../src/leyline.js";
import { AdaptationCommand, CommandType, SeedOperation } from "../../src/leyline.js";
import { startServer, type RunningServer } from "../../src/server/server.js";
import { kasminaClient } from "./grpc-clients.js";
import type { KasminaServiceClient } from "../../generated/esper/kasmina/v1/kasmina.js";

export const SECRET = "test-secret";

export interface Harness {
  app: App;
  server: RunningServer;
  client: KasminaServiceClient;
  clock: FakeClock;
  config: KasminaConfig;
  close(): Promise<void>;
}

export async function startHarness(env: Record<string, string> = {}, metrics: MetricsPort = noopMetrics, tracing?: TracingPort, clock = new FakeClock(1000, 1_790_000_000_000)): Promise<Harness> {
  // In-process tests keep state in memory unless they ask for a file (KASMINA_STATE=sqlite).
  const config = loadConfig({ ESPER_LEYLINE_SECRET: SECRET, KASMINA_PORT: "0", KASMINA_STATE: "memory", ...env });
  const app = await createApp(config, { metrics, log: () => undefined, version: "test", clock, ...(tracing === undefined ? {} : { tracing }) });
  const server = await startServer({ config, api: app.api, metrics, log: () => undefined });
  app.onHealthChange((healthy) => server.setServing(healthy));
  server.setServing(app.healthy());
  const client = kasminaClient(server.address);
  return {
    app,
    server,
    client,
    clock,
    config,
    async close() {
      client.close();
      await app.close();
      await server.shutdown(1000);
      await app.closeStore();
    },
  };
}

let sequence = 0;

export function command(clock: FakeClock, fields: Partial<AdaptationCommand>, secret: string | undefined = SECRET): AdaptationCommand {
  sequence += 1;
  const cmd = AdaptationCommand.fromPartial({
    version: 1,
    commandId: `cmd-${sequence}`,
    issuedAt: { seconds: BigInt(Math.floor(clock.wallMs() / 1000)), nanos: 0 },
    issuedBy: "tamiyo",
    ...fields,
  });
  if (secret !== undefined) cmd.annotations.set("signature", signCommand(cmd, secret));
  return cmd;
}

export const germinate = (clock: FakeClock, seedId: string, blueprintId = "BP001", extra: Partial<AdaptationCommand> = {}): AdaptationCommand =>
  command(clock, {
    commandType: CommandType.COMMAND_SEED,
    targetSeedId: seedId,
    payload: { $case: "seedOperation", value: { operation: SeedOperation.SEED_OP_GERMINATE, blueprintId, parameters: new Map() } },
    ...extra,
  });

export const seedOp = (clock: FakeClock, seedId: string, operation: SeedOperation, extra: Partial<AdaptationCommand> = {}): AdaptationCommand =>
  command(clock, {
    commandType: CommandType.COMMAND_SEED,
    targetSeedId: seedId,
    payload: { $case: "seedOperation", value: { operation, blueprintId: "", parameters: new Map() } },
    ...extra,
  });

export const breakerCommand = (clock: FakeClock, desiredState: CircuitBreakerState, rationale = ""): AdaptationCommand =>
  command(clock, { commandType: CommandType.COMMAND_CIRCUIT_BREAKER, payload: { $case: "circuitBreaker", value: { desiredState, rationale } } });
