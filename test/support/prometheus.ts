// A real Prometheus (Debian package `prometheus`, /usr/bin/prometheus) for integration tests:
// started on a free port with a given config and a throw-away TSDB, queried over its HTTP API.
// Its absence is a setup error (CI installs it), never a skip.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./redis-server.js";

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export class PrometheusServer {
  private output = "";
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly dir: string,
  ) {
    const collect = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString("utf8")).slice(-4000);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
  }

  static async start(config: string): Promise<PrometheusServer> {
    const found = spawnSync("prometheus", ["--version"], { encoding: "utf8" });
    if (found.error !== undefined || found.status !== 0) {
      throw new Error("prometheus is not installed or not on PATH (install it with `apt-get install -y prometheus`)");
    }
    const dir = mkdtempSync(join(tmpdir(), "kasmina-prom-"));
    writeFileSync(join(dir, "prometheus.yml"), config);
    const port = await freePort();
    const child = spawn(
      "prometheus",
      [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const server = new PrometheusServer(child, port, dir);
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`prometheus exited during start-up:\n${server.output}`);
      const ready = await fetch(`${server.url}/-/ready`).then((r) => r.ok, () => false);
      if (ready) return server;
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`prometheus was not ready within 20 s:\n${server.output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** An instant PromQL query; throws with Prometheus's own message when the query does not parse. */
  async query(expr: string): Promise<PromSample[]> {
    const response = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as { status: string; error?: string; data?: { resultType: string; result: PromSample[] } };
    if (body.status !== "success") throw new Error(`query ${expr} failed: ${body.error ?? response.status}`);
    if (body.data?.resultType !== "vector") throw new Error(`query ${expr} returned ${body.data?.resultType}, not an instant vector`);
    return body.data.result;
  }

  /** Polls `expr` until `accept` holds (scrapes arrive every interval), or fails with the last result. */
  async until(expr: string, accept: (samples: PromSample[]) => boolean, timeoutMs = 15_000): Promise<PromSample[]> {
    const deadline = Date.now() + timeoutMs;
    let last: PromSample[] = [];
    while (Date.now() < deadline) {
      last = await this.query(expr);
      if (accept(last)) return last;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`${expr} never satisfied the check within ${timeoutMs} ms; last result ${JSON.stringify(last)}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      await new Promise<void>((resolve) => {
        this.child.once("exit", () => resolve());
        this.child.kill("SIGTERM");
      });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
