import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("loadConfig", () => {
  it("uses the documented defaults on an empty environment", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      secret: undefined,
      host: "127.0.0.1",
      port: 50051,
      bus: "none",
      cacheTtlSeconds: 300,
      gcFrequency: 10,
      latencyBudgetMs: 10,
      fallbackBlueprint: "BP001",
      embargoSeconds: 30,
      nonceTtlSeconds: 300,
      freshnessWindowSeconds: 60,
      projectionSamples: 256,
      isolationThreshold: 1e-6,
      isolationBackend: "auto",
      maxMessageBytes: 16 * 1024 * 1024,
      lifecyclePacing: "driven",
      alphaTotalSteps: 20,
      alphaTemperature: 2,
      prometheusPort: undefined,
      authToken: undefined,
    });
  });

  it("parses every variable it is given", () => {
    const config = loadConfig({
      ESPER_LEYLINE_SECRET: "s3cret",
      KASMINA_PORT: "0",
      KASMINA_BUS: "memory",
      KASMINA_PROJECTION_SAMPLES: "0",
      KASMINA_LIFECYCLE_PACING: "immediate",
      KASMINA_FALLBACK_BLUEPRINT: "",
      KASMINA_PROMETHEUS_PORT: "9464",
      KASMINA_ISOLATION_BACKEND: "js",
    });
    expect(config.secret).toBe("s3cret");
    expect(config.port).toBe(0);
    expect(config.bus).toBe("memory");
    expect(config.projectionSamples).toBe(0);
    expect(config.lifecyclePacing).toBe("immediate");
    expect(config.fallbackBlueprint).toBeUndefined();
    expect(config.prometheusPort).toBe(9464);
    expect(config.isolationBackend).toBe("js");
  });

  it.each([
    ["KASMINA_PORT", "70000"],
    ["KASMINA_PORT", "abc"],
    ["KASMINA_BUS", "kafka"],
    ["KASMINA_CACHE_TTL_SECONDS", "-1"],
    ["KASMINA_LATENCY_BUDGET_MS", "0"],
    ["KASMINA_EMBARGO_SECONDS", "-5"],
    ["KASMINA_PROJECTION_SAMPLES", "1.5"],
    ["KASMINA_ISOLATION_BACKEND", "cuda"],
    ["KASMINA_LIFECYCLE_PACING", "fast"],
    ["KASMINA_MAX_MESSAGE_BYTES", "12"],
    ["KASMINA_REDIS_URL", "http://localhost"],
    ["KASMINA_BLUEPRINT_CATALOG", "/nonexistent/catalog.json"],
    ["KASMINA_TLS_CERT", "/nonexistent/cert.pem"],
    ["KASMINA_ALPHA_TEMPERATURE", "NaN"],
  ])("rejects %s=%s with a message naming the variable", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrowError(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrowError(new RegExp(`^${name}: `));
  });

  it("needs both halves of a TLS key pair", () => {
    const dir = mkdtempSync(join(tmpdir(), "kasmina-config-"));
    const cert = join(dir, "cert.pem");
    writeFileSync(cert, "x");
    expect(() => loadConfig({ KASMINA_TLS_CERT: cert })).toThrowError(/KASMINA_TLS_KEY/);
  });

  it("reads the secret from a file when asked, never from anywhere else", () => {
    const dir = mkdtempSync(join(tmpdir(), "kasmina-config-"));
    const file = join(dir, "secret");
    writeFileSync(file, "from-file\n");
    expect(loadConfig({ ESPER_LEYLINE_SECRET_FILE: file }).secret).toBe("from-file");
    expect(() => loadConfig({ ESPER_LEYLINE_SECRET_FILE: join(dir, "missing") })).toThrowError(/^ESPER_LEYLINE_SECRET_FILE: /);
  });
});
