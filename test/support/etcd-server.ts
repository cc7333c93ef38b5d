// Real etcd for the replica tests: one member or a three-member cluster on free 127.0.0.1 ports,
// each with its own temporary data dir, removed in close(). Nothing is skipped when etcd is missing:
// CI installs it (apt package `etcd-server`), so its absence is a setup error with a clear message.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./redis-server.js";

const READY_TIMEOUT_MS = 20_000;

/** PEM files for TLS on the client URLs; with `ca` set, clients need a certificate it signed. */
export interface EtcdTls {
  cert: string;
  key: string;
  ca: string;
  /** A client certificate and key the health check presents. */
  clientCert: string;
  clientKey: string;
}

class Member {
  child: ChildProcess | undefined;
  output = "";

  constructor(
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
    readonly tls: EtcdTls | undefined,
  ) {}

  get endpoint(): string {
    return `${this.tls === undefined ? "http" : "https"}://127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }
}

async function healthy(endpoint: string, tls: EtcdTls | undefined): Promise<boolean> {
  if (tls !== undefined) {
    return new Promise((resolve) => {
      const req = request(`${endpoint}/health`, { ca: readFileSync(tls.ca), cert: readFileSync(tls.clientCert), key: readFileSync(tls.clientKey), timeout: 1000 }, (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
        res.on("end", () => resolve(body.includes('"health":"true"')));
      });
      req.on("error", () => resolve(false));
      req.on("timeout", () => req.destroy());
      req.end();
    });
  }
  try {
    const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await response.json()) as { health?: string };
    return body.health === "true";
  } catch {
    return false;
  }
}

export class EtcdCluster {
  private readonly root: string;

  private constructor(private readonly members: Member[], root: string) {
    this.root = root;
  }

  /** Starts `size` members (1 or 3) and waits until every one reports healthy. */
  static async start(size = 1, tls?: EtcdTls): Promise<EtcdCluster> {
    const found = spawnSync("etcd", ["--version"], { encoding: "utf8" });
    if (found.error !== undefined || found.status !== 0) {
      throw new Error("etcd is not installed or not on PATH; the replica tests need a real etcd (install it with `apt-get install -y etcd-server`)");
    }
    const root = mkdtempSync(join(tmpdir(), "kasmina-etcd-"));
    const members: Member[] = [];
    for (let i = 0; i < size; i++) members.push(new Member(`m${i}`, await freePort(), await freePort(), join(root, `m${i}`), tls));
    const cluster = new EtcdCluster(members, root);
    try {
      await Promise.all(members.map((_, i) => cluster.startMember(i, "new")));
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  get size(): number {
    return this.members.length;
  }

  /** Client URLs of every member (running or not), as KASMINA_ETCD_ENDPOINTS takes them. */
  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }

  endpoint(index: number): string {
    return this.member(index).endpoint;
  }

  running(index: number): boolean {
    return this.member(index).running;
  }

  /** Index of the member that is Raft leader now (asked of every running member). */
  async leader(): Promise<number> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      for (let i = 0; i < this.members.length; i++) {
        const m = this.member(i);
        if (!m.running) continue;
        const out = spawnSync("etcdctl", ["--endpoints", m.endpoint, "endpoint", "status", "-w", "json"], { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" }, timeout: 5000 });
        try {
          const [status] = JSON.parse(out.stdout) as { Status: { header: { member_id: number }; leader: number } }[];
          if (status !== undefined && status.Status.leader !== 0 && status.Status.header.member_id === status.Status.leader) return i;
        } catch {
          // not answering yet
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error("no etcd member reports itself leader");
  }

  /** Turns on etcd authentication with one root user (etcdctl, as an operator would). */
  enableAuth(user: string, password: string): void {
    const etcdctl = (...args: string[]): void => {
      const out = spawnSync("etcdctl", ["--endpoints", this.endpoints.join(","), ...args], { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" }, timeout: 10_000 });
      if (out.status !== 0) throw new Error(`etcdctl ${args[0] ?? ""} failed: ${out.stderr}`);
    };
    etcdctl("user", "add", user, `--new-user-password=${password}`, "--interactive=false");
    etcdctl("user", "grant-role", user, "root");
    etcdctl("auth", "enable");
  }

  /** SIGKILLs the member (an abrupt crash) and waits for its exit; its data dir is kept. */
  async kill(index: number): Promise<void> {
    await this.signal(index, "SIGKILL");
  }

  /** Stops the member cleanly (SIGTERM); its data dir is kept, so restart() brings it back. */
  async stop(index: number): Promise<void> {
    await this.signal(index, "SIGTERM");
  }

  /** Starts a stopped member again on the same ports and data dir, and waits for it to be healthy. */
  async restart(index: number): Promise<void> {
    await this.startMember(index, "existing");
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    rmSync(this.root, { recursive: true, force: true });
  }

  private member(index: number): Member {
    const m = this.members[index];
    if (m === undefined) throw new Error(`no etcd member ${index}`);
    return m;
  }

  private async signal(index: number, signal: NodeJS.Signals): Promise<void> {
    const m = this.member(index);
    const child = m.child;
    m.child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill(signal);
    });
  }

  private async startMember(index: number, state: "new" | "existing"): Promise<void> {
    const m = this.member(index);
    if (m.running) throw new Error(`etcd member ${m.name} is already running`);
    const initialCluster = this.members.map((p) => `${p.name}=http://127.0.0.1:${p.peerPort}`).join(",");
    m.output = "";
    const child = spawn(
      "etcd",
      [
        "--name", m.name,
        "--data-dir", m.dataDir,
        "--listen-client-urls", m.endpoint,
        "--advertise-client-urls", m.endpoint,
        "--listen-peer-urls", `http://127.0.0.1:${m.peerPort}`,
        "--initial-advertise-peer-urls", `http://127.0.0.1:${m.peerPort}`,
        "--initial-cluster", initialCluster,
        "--initial-cluster-state", state,
        "--initial-cluster-token", `kasmina-test-${this.members[0]!.peerPort}`,
        // Kasmina writes one transaction per acknowledged call; a first capture of a busy run can
        // exceed the default 128 operations (README: Running several replicas).
        "--max-txn-ops", "4096",
        "--log-level", "warn",
        ...(m.tls === undefined ? [] : ["--cert-file", m.tls.cert, "--key-file", m.tls.key, "--trusted-ca-file", m.tls.ca, "--client-cert-auth"]),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    m.child = child;
    const collect = (chunk: Buffer): void => {
      m.output = (m.output + chunk.toString("utf8")).slice(-4000);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    // A member of a cluster is healthy only once a leader is elected, which needs a quorum: in a
    // fresh cluster the members wait for each other, so each one waits here concurrently.
    while (!(await healthy(m.endpoint, m.tls))) {
      if (!m.running) {
        m.child = undefined;
        throw new Error(`etcd member ${m.name} (client port ${m.clientPort}) exited during start-up:\n${m.output}`);
      }
      if (Date.now() > deadline) {
        await this.kill(index);
        throw new Error(`etcd member ${m.name} was not healthy within ${READY_TIMEOUT_MS} ms:\n${m.output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
