// Entry point: configuration from the environment, OpenTelemetry, the service, graceful shutdown.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig, type KasminaConfig } from "./config.js";
import { startOtel } from "./infra/otel.js";
import { OtelMetrics } from "./infra/otel-metrics.js";
import { repoRoot } from "./repo-root.js";
import { createApp, type App } from "./app.js";
import { startServer } from "./server/server.js";

const log = (message: string): void => console.error(`kasmina: ${message}`);

function version(): string {
  const pkg = JSON.parse(readFileSync(join(repoRoot(), "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

async function main(): Promise<void> {
  let config: KasminaConfig;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      log(`configuration error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  for (const warning of config.warnings) log(`configuration warning: ${warning}`);
  const ver = version();
  const otel = startOtel({ env: process.env, prometheusPort: config.prometheusPort, version: ver });
  const metrics = new OtelMetrics(otel.meter);
  if (config.secret === undefined) {
    log("ESPER_LEYLINE_SECRET is not set: every command will be refused with FAILED_PRECONDITION verifier_unavailable");
  }
  let app: App;
  try {
    app = await createApp(config, {
      metrics,
      tracer: otel.tracer,
      log,
      version: ver,
      // Memory is now ahead of the file: stop, so a restart serves exactly what was committed.
      onStoreFailure: (error) => {
        log(`state store write failed (${config.state === "sqlite" ? `KASMINA_STATE_PATH=${config.statePath}` : "KASMINA_STATE=memory"}): ${error.message}; exiting`);
        process.exit(1);
      },
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      log(`configuration error: ${error.message}`);
      await otel.shutdown();
      process.exit(2);
    }
    throw error;
  }
  const server = await startServer({ config, api: app.api, metrics, log });
  app.onHealthChange((healthy) => server.setServing(healthy));
  // A failure reported before the listener was attached (e.g. Redis down at start) still counts.
  server.setServing(app.healthy());
  // Handlers go in before the ready line: a supervisor may signal as soon as it reads it.
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal} received, draining`);
    void (async () => {
      try {
        // Watch streams end first, so tryShutdown is not left waiting on them.
        await app.close();
        await server.shutdown(5000);
        // Calls that finished during the drain have committed; now the file can close.
        await app.closeStore();
        await otel.shutdown();
      } catch (error) {
        log(`error while shutting down: ${(error as Error).message}`);
      }
      process.exit(0);
    })();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  console.log(`kasmina listening on ${config.host}:${server.port} (isolation backend: ${app.isolationBackend})`);
  if (otel.exporters.length > 0) log(`telemetry exported to ${otel.exporters.join(", ")}`);

}

// Nothing a client sends may take the service down: a stray rejection is logged, not fatal.
process.on("unhandledRejection", (reason) => {
  log(`unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
});

main().catch((error: unknown) => {
  log(`failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
