// Built Kasmina processes as replicas over one etcd (KASMINA_STATE=etcd): each on its own fixed free
// port (so a restarted replica comes back at the same address), with helpers for calls in a run and
// for commands signed at the current wall time (the verifier's freshness window uses real time here).
import type { ServiceError } from "@grpc/grpc-js";
import type { KasminaServiceClient } from "../../generated/esper/kasmina/v1/kasmina.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { OWNER_METADATA_KEY } from "../../src/kasmina/run-ownership.js";
import { call, inRun, kasminaClient, refusal } from "./grpc-clients.js";

export { inRun, refusal };
import { SECRET } from "./harness.js";
import { spawnKasmina, type KasminaProcess } from "./process.js";
import { freePort } from "./redis-server.js";

export class Replica {
  process: KasminaProcess | undefined;
  client: KasminaServiceClient;

  private constructor(
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {
    this.client = kasminaClient(this.address);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(endpoints: readonly string[], env: Record<string, string> = {}): Promise<Replica> {
    const port = await freePort();
    const replica = new Replica(port, {
      ESPER_LEYLINE_SECRET: SECRET,
      KASMINA_STATE: "etcd",
      KASMINA_ETCD_ENDPOINTS: endpoints.join(","),
      KASMINA_PORT: String(port),
      KASMINA_ADVERTISE_ADDRESS: `127.0.0.1:${port}`,
      ...env,
    });
    await replica.restart();
    return replica;
  }

  /** Starts the process (again) on the same port and waits for its ready line. */
  async restart(): Promise<void> {
    this.process = spawnKasmina(this.env);
    await this.process.ready();
  }

  get pid(): number {
    const pid = this.process?.child.pid;
    if (pid === undefined) throw new Error("replica is not running");
    return pid;
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    await this.process?.stop(signal);
    this.process = undefined;
  }

  close(): Promise<void> {
    this.client.close();
    return this.kill("SIGKILL");
  }
}

/** A clock at the current wall time, for signing a command now. */
export const now = (): FakeClock => new FakeClock(0, Date.now());

export const ownerOf = (error: ServiceError): string | undefined => {
  const value = error.metadata?.get(OWNER_METADATA_KEY)[0];
  return typeof value === "string" ? value : undefined;
};

/** Retries `fn` until it resolves (each failure after `pauseMs`), up to `timeoutMs`. */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs: number, pauseMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      return await fn();
    } catch (error) {
      last = error;
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}

export { call };
