// Regression tests: signalling `npm start`'s own process (as a supervisor does) left the node server
// running and holding its port; and the HTTP/2 window widening read grpc-js private fields that a
// shape change could turn into a start-up failure.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { Server } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../src/repo-root.js";
import { guardStreams, widenFlowControlWindow } from "../../src/server/server.js";
import { healthStatus } from "../support/grpc-clients.js";

const portIsFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
  });

describe("Signalling npm start's own process left the node server running", () => {
  it("SIGTERM to npm's pid reaches the server: it drains, exits 0 and frees its port", { timeout: 180_000 }, async () => {
    const npm = spawn("npm", ["start", "--silent"], {
      cwd: repoRoot(),
      env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", KASMINA_PORT: "0", ESPER_LEYLINE_SECRET: "npm-start-test" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    npm.stdout.on("data", (d: Buffer) => (output += d.toString()));
    npm.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = once(npm, "exit") as Promise<[number | null, string | null]>;
    const address = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line; output: ${output}`)), 170_000);
      npm.stdout.on("data", () => {
        const match = /kasmina listening on (\S+) /.exec(output);
        if (match?.[1] !== undefined) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      void exited.then(() => reject(new Error(`npm exited before ready; output: ${output}`)));
    });
    const port = Number(address.split(":").pop());
    expect(await healthStatus(address)).toBe("SERVING");
    expect(await portIsFree(port)).toBe(false);

    npm.kill("SIGTERM"); // npm's own pid, not the server's
    const [code] = await exited;
    expect(output).toMatch(/SIGTERM received, draining/);
    expect(code).toBe(0);
    expect(await portIsFree(port)).toBe(true);
  });
});

describe("The HTTP/2 window widening reads grpc-js private fields", () => {
  type Shape = [string, (server: Server) => void];
  const shapes: Shape[] = [
    ["field missing", (s) => Reflect.deleteProperty(s, "http2Servers")],
    ["not a Map", (s) => Reflect.set(s, "http2Servers", [1, 2])],
    ["keys are not emitters", (s) => Reflect.set(s, "http2Servers", new Map([[{ notAnEmitter: true }, {}]]))],
    ["a getter that throws", (s) => Object.defineProperty(s, "http2Servers", { get: () => { throw new Error("moved"); } })],
    ["keys are null", (s) => Reflect.set(s, "http2Servers", new Map([[null, {}]]))],
  ];

  it.each(shapes)("logs and keeps the defaults when the shape changes: %s", (_name, change) => {
    const server = new Server();
    change(server);
    const logged: string[] = [];
    expect(() => widenFlowControlWindow(server, 16 * 1024 * 1024, (m) => logged.push(m))).not.toThrow();
    expect(() => guardStreams(server, (m) => logged.push(m))).not.toThrow();
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatch(/^grpc-js internals changed \(.+\): the server keeps HTTP\/2's default flow-control window$/);
    // Never bound, so there is nothing to shut down (and its mutated field would break that).
  });

  it("pins @grpc/grpc-js to the exact version the widening was tested on", async () => {
    const { readFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const pkg = JSON.parse(readFileSync(join(repoRoot(), "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const installed = JSON.parse(readFileSync(join(repoRoot(), "node_modules", "@grpc", "grpc-js", "package.json"), "utf8")) as { version: string };
    expect(pkg.dependencies["@grpc/grpc-js"]).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg.dependencies["@grpc/grpc-js"]).toBe(installed.version);
  });
});
