// Failover under load (issue 13 item 5): a real etcd, three replicas (the built process), 8 clients
// driving 24 runs with ApplyCommand; one replica is SIGKILLed in the middle. Clients follow
// `kasmina-owner` redirects and resend a command after UNAVAILABLE (the ledger refuses a duplicate).
// Prints commands acknowledged, errors seen, the time from the kill to the first successful call on
// each moved run (p50/max), and afterwards checks that every acknowledged command is present and
// none was applied twice. Before that, the command rate of one in-process app on the etcd store
// beside the SQLite and memory stores (same commands, same 8 × 3 runs; memory is the baseline).
// `npm run bench:failover` (builds first). BENCH_SECONDS (12), BENCH_RATE_SECONDS (3), BENCH_LEASE_MS (3000).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import type { ApplyCommandRequest, KasminaServiceClient } from "../generated/esper/kasmina/v1/kasmina.js";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { noopMetrics } from "../src/kasmina/ports.js";
import type { AdaptationCommand } from "../src/leyline.js";
import { EtcdCluster } from "../test/support/etcd-server.js";
import { germinate, SECRET } from "../test/support/harness.js";
import { Replica, call, inRun, now, ownerOf } from "../test/support/replicas.js";

const SECONDS = Number(process.env["BENCH_SECONDS"] ?? 12);
const RATE_SECONDS = Number(process.env["BENCH_RATE_SECONDS"] ?? 3);
const LEASE_MS = Number(process.env["BENCH_LEASE_MS"] ?? 3000);
const CLIENTS = 8;
const RUNS = 24;

const runName = (i: number): string => `bench-run-${i}`;
const runsOf = (client: number): string[] => [0, 1, 2].map((k) => runName(client + k * CLIENTS));
let sequence = 0;
const nextCommand = (): { command: AdaptationCommand; seed: string } => {
  const seed = `c${++sequence}`;
  return { command: germinate(now(), seed), seed };
};
const quantile = (xs: number[], q: number): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
};

/** Commands/s of one in-process app (no transport) on a store: 8 loops, 3 runs each. */
async function storeRate(env: Record<string, string>): Promise<number> {
  const config = loadConfig({ ESPER_LEYLINE_SECRET: SECRET, KASMINA_PORT: "0", KASMINA_ADVERTISE_ADDRESS: "127.0.0.1:1", ...env });
  const app = await createApp(config, { metrics: noopMetrics, log: () => undefined, version: "bench" });
  const context = (run: string) => ({ method: "ApplyCommand", metadata: inRun(run), signal: new AbortController().signal });
  let done = 0;
  const stopAt = performance.now() + RATE_SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      const runs = runsOf(c);
      for (let n = 0; performance.now() < stopAt; n++) {
        const request: ApplyCommandRequest = { command: nextCommand().command };
        await app.api.applyCommand(request, context(runs[n % runs.length]!));
        done++;
      }
    }),
  );
  const rate = done / RATE_SECONDS;
  await app.close();
  return rate;
}

interface Sent {
  run: string;
  seed: string;
  command: AdaptationCommand;
  /** OK answers seen for this command across all its attempts. */
  oks: number;
  /** Refused as nonce_replayed on a resend: an earlier attempt had been applied. */
  replayedOnResend: boolean;
}

async function main(): Promise<void> {
  const etcd = await EtcdCluster.start(1);
  const dir = mkdtempSync(join(tmpdir(), "kasmina-bench-"));
  const replicas: Replica[] = [];
  try {
    const memory = await storeRate({ KASMINA_STATE: "memory" });
    const sqlite = await storeRate({ KASMINA_STATE: "sqlite", KASMINA_STATE_PATH: join(dir, "bench.db") });
    const etcdRate = await storeRate({ KASMINA_STATE: "etcd", KASMINA_ETCD_ENDPOINTS: etcd.endpoints.join(","), KASMINA_LEASE_MS: String(LEASE_MS) });

    for (let i = 0; i < 3; i++) replicas.push(await Replica.start(etcd.endpoints, { KASMINA_LEASE_MS: String(LEASE_MS) }));
    const clients = new Map(replicas.map((r) => [r.address, r.client]));
    const sent: Sent[] = [];
    const errors = new Map<string, number>();
    const countError = (what: string): void => {
      errors.set(what, (errors.get(what) ?? 0) + 1);
    };
    // Each run starts on replica (index mod 3), so the victim owns a third of them.
    const route = new Map<string, string>(Array.from({ length: RUNS }, (_, i) => [runName(i), replicas[i % 3]!.address]));
    const victim = replicas[0]!;
    const victimRuns = new Set(Array.from({ length: RUNS }, (_, i) => runName(i)).filter((_, i) => i % 3 === 0));
    const kill = { at: undefined as number | undefined };
    const recovered = new Map<string, number>();
    let stop = false;

    const send = async (entry: Sent): Promise<void> => {
      for (let attempt = 0; !stop || attempt === 0; attempt++) {
        const address = route.get(entry.run)!;
        const client = clients.get(address) as KasminaServiceClient;
        try {
          await call(client, client.applyCommand, { command: entry.command }, inRun(entry.run));
          entry.oks++;
          if (kill.at !== undefined && victimRuns.has(entry.run) && !recovered.has(entry.run)) recovered.set(entry.run, performance.now() - kill.at);
          return;
        } catch (error) {
          const e = error as ServiceError;
          if (e.code === status.PERMISSION_DENIED && /^nonce_replayed/.test(e.details) && attempt > 0) {
            entry.replayedOnResend = true;
            return;
          }
          const owner = ownerOf(e);
          const kind = owner === undefined ? "" : clients.has(owner) ? " redirected to a live owner" : " naming the killed owner (lease not yet expired)";
          countError(`${status[e.code] ?? e.code}${kind}`);
          if (e.code !== status.UNAVAILABLE) return;
          if (owner !== undefined && clients.has(owner)) route.set(entry.run, owner);
          else {
            // The replica is gone or etcd-less: try the next one.
            const i = replicas.findIndex((r) => r.address === address);
            route.set(entry.run, replicas[(i + 1) % replicas.length]!.address);
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
      }
    };

    const started = performance.now();
    const loops = Array.from({ length: CLIENTS }, async (_, c) => {
      const runs = runsOf(c);
      for (let n = 0; !stop; n++) {
        const run = runs[n % runs.length]!;
        const { command, seed } = nextCommand();
        const entry: Sent = { run, seed, command, oks: 0, replayedOnResend: false };
        sent.push(entry);
        await send(entry);
      }
    });
    await new Promise((resolve) => setTimeout(resolve, (SECONDS * 1000) / 2));
    const ackedBeforeKill = sent.filter((s) => s.oks > 0).length;
    kill.at = performance.now();
    await victim.kill("SIGKILL");
    clients.delete(victim.address);
    replicas.splice(0, 1);
    for (const [run, address] of route) if (address === victim.address) route.set(run, replicas[0]!.address);
    await new Promise((resolve) => setTimeout(resolve, (SECONDS * 1000) / 2));
    stop = true;
    await Promise.all(loops);
    const elapsed = (performance.now() - started) / 1000;

    // Checks, through the surviving replicas (following redirects).
    const acked = sent.filter((s) => s.oks > 0);
    let missing = 0;
    let replayAccepted = 0;
    const seedsOf = new Map<string, Set<string>>();
    for (let i = 0; i < RUNS; i++) {
      const run = runName(i);
      for (const r of replicas) {
        try {
          const response = await call(r.client, r.client.exportSeedStates, {}, inRun(run));
          seedsOf.set(run, new Set(response.seeds.map((s) => s.seedId)));
          route.set(run, r.address);
          break;
        } catch {
          // owned by the other replica
        }
      }
    }
    for (const s of acked) if (seedsOf.get(s.run)?.has(s.seed) !== true) missing++;
    // A replay of every acknowledged command, to the run's owner: each must be refused.
    for (const s of acked) {
      const client = clients.get(route.get(s.run)!) as KasminaServiceClient;
      try {
        await call(client, client.applyCommand, { command: s.command }, inRun(s.run));
        replayAccepted++;
      } catch (error) {
        if (!/^nonce_replayed/.test((error as ServiceError).details)) replayAccepted++;
      }
    }
    const twice = sent.filter((s) => s.oks > 1).length;
    const moves = [...recovered.values()];

    console.log(`Failover: 3 replicas over one etcd, ${CLIENTS} clients driving ${RUNS} runs, ${elapsed.toFixed(1)} s, replica 1 of 3 SIGKILLed at the middle (KASMINA_LEASE_MS=${LEASE_MS})`);
    console.log(`commands acknowledged        ${acked.length} (${ackedBeforeKill} before the kill), ${(acked.length / elapsed).toFixed(0)} cmd/s`);
    console.log(`errors seen by clients       ${[...errors].map(([k, v]) => `${k}: ${v}`).join(", ") || "none"}`);
    console.log(`kill → first success on a moved run  p50 ${quantile(moves, 0.5).toFixed(0)} ms, max ${Math.max(...moves).toFixed(0)} ms (${moves.length} of ${victimRuns.size} runs moved)`);
    console.log(`resends refused as applied   ${sent.filter((s) => s.replayedOnResend).length} (first attempt applied, its answer lost in the kill)`);
    console.log(`check: acknowledged present  ${missing === 0 ? "all" : `${missing} MISSING`} (${acked.length} commands in ${seedsOf.size} runs)`);
    console.log(`check: applied twice         ${twice === 0 && replayAccepted === 0 ? "none" : `${twice} with two OKs, ${replayAccepted} replays accepted`}`);
    console.log("");
    console.log(`Command rate of one in-process app (no transport), ${CLIENTS} loops × 3 runs, ${RATE_SECONDS} s each`);
    console.log(`memory store                 ${memory.toFixed(0).padStart(7)} cmd/s   (baseline)`);
    console.log(`sqlite store                 ${sqlite.toFixed(0).padStart(7)} cmd/s   ${(sqlite / memory).toFixed(3)} × memory`);
    console.log(`etcd store (1 member)        ${etcdRate.toFixed(0).padStart(7)} cmd/s   ${(etcdRate / memory).toFixed(3)} × memory, ${(etcdRate / sqlite).toFixed(2)} × sqlite`);
    if (missing > 0 || twice > 0 || replayAccepted > 0 || moves.length < victimRuns.size) process.exitCode = 1;
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
    await etcd.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
