// The built service as a child process (what `npm start` runs), for tests of the real entry point.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../../src/repo-root.js";

export const MAIN = join(repoRoot(), "dist", "src", "main.js");

export interface KasminaProcess {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  stderr(): string;
  /** Resolves with the ready line (`kasmina listening on HOST:PORT (isolation backend: NAME)`). */
  ready(): Promise<string>;
  /** host:port from the ready line. */
  address(): Promise<string>;
  /** Resolves when the process exits by itself. */
  exited(): Promise<{ code: number | null; signal: string | null }>;
  /** Sends the signal (default SIGTERM) and resolves with the exit code and signal. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: string | null }>;
}

export function spawnKasmina(env: Record<string, string>): KasminaProcess {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build (npm test does it first)`);
  const child = spawn(process.execPath, [MAIN], {
    // State in memory unless a test names a file: tests never write kasmina-data/ in the checkout.
    env: { PATH: process.env["PATH"] ?? "", KASMINA_PORT: "0", KASMINA_STATE: "memory", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, "exit") as Promise<[number | null, string | null]>;
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within 30 s; output: ${stdout}${stderr}`)), 30_000);
    const check = (): void => {
      const line = stdout.split("\n").find((l) => l.startsWith("kasmina listening on "));
      if (line === undefined) return;
      clearTimeout(timer);
      resolve(line);
    };
    child.stdout?.on("data", check);
    void exited.then(([code]) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ready; output: ${stdout}${stderr}`));
    });
  });
  ready.catch(() => undefined); // a caller that never awaits ready() must not see an unhandled rejection
  return {
    child,
    output: () => stdout + stderr,
    stderr: () => stderr,
    ready: () => ready,
    address: async () => /on (\S+) /.exec(await ready)?.[1] ?? "",
    async exited() {
      const [code, sig] = await exited;
      return { code, signal: sig };
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const [code, sig] = await exited;
      return { code, signal: sig };
    },
  };
}
