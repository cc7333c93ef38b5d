// One typed table of configuration variables, parsed and validated in one place (DESIGN §2, §4).
// A bad value fails start-up with a message naming the variable.
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { loadEtcdConfig, type EtcdConfig } from "./config-replicas.js";

export type BusKind = "none" | "memory" | "redis";
export type IsolationBackendPreference = "auto" | "tensorflow-gpu" | "tensorflow" | "wasm" | "js";
export type LifecyclePacing = "driven" | "immediate";

export interface KasminaConfig {
  /** HMAC secret for command signing; undefined ⇒ every command is refused (verifier_unavailable). */
  secret: string | undefined;
  host: string;
  port: number;
  bus: BusKind;
  redisUrl: string;
  cacheTtlSeconds: number;
  gcFrequency: number;
  latencyBudgetMs: number;
  fallbackBlueprint: string | undefined;
  embargoSeconds: number;
  nonceTtlSeconds: number;
  freshnessWindowSeconds: number;
  projectionSamples: number;
  isolationThreshold: number;
  isolationBackend: IsolationBackendPreference;
  blueprintCatalog: string | undefined;
  /** The run of calls without `kasmina-training-run` metadata (DESIGN §2.1). */
  trainingRunId: string;
  maxMessageBytes: number;
  lifecyclePacing: LifecyclePacing;
  alphaTotalSteps: number;
  alphaTemperature: number;
  prometheusPort: number | undefined;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  tlsClientCa: string | undefined;
  authToken: string | undefined;
  /** DESIGN §2.2: where runs and the nonce ledger are kept. */
  state: StateKind;
  statePath: string;
  maxTrainingRuns: number;
  /** KASMINA_STATE=etcd only (DESIGN §2.4): endpoints, lease, advertised address, credentials. */
  etcd: EtcdConfig | undefined;
  /** Client-controlled bounds (DESIGN §2.0; README "Limits"). */
  limits: KasminaLimits;
  /** Problems worth a line in the log that do not stop start-up (never the secret itself). */
  warnings: string[];
}

/** Every bound on what a client controls; each has a variable, a default and a status (README "Limits"). */
export interface KasminaLimits {
  /** KASMINA_MAX_CONCURRENT_STREAMS: HTTP/2 streams one connection may hold open (SETTINGS). */
  maxConcurrentStreams: number;
  /** KASMINA_STREAM_IDLE_MS: a client stream that delivers no message for this long ends with DEADLINE_EXCEEDED. */
  streamIdleMs: number;
  /** KASMINA_MAX_CONNECTION_IDLE_MS: a connection with no call for this long is closed (GOAWAY). */
  connectionIdleMs: number;
  /** KASMINA_MAX_CONNECTION_AGE_MS: a connection older than this is asked to go away. */
  connectionAgeMs: number;
  /** KASMINA_MAX_CONNECTION_AGE_GRACE_MS: how long calls of an aged connection may still run. */
  connectionAgeGraceMs: number;
  /** KASMINA_MAX_SESSION_PARAMETERS: distinct parameter keys one isolation session may know. */
  maxSessionParameters: number;
  /** KASMINA_MAX_EXACT_COPY_BYTES: bytes of exact-mode gradient copies one session may hold unpaired or in flight. */
  maxExactCopyBytes: number;
  /** KASMINA_MAX_WATCHERS: concurrent WatchTelemetry streams. */
  maxWatchers: number;
  /** KASMINA_TELEMETRY_CACHE_MAX_ENTRIES: packets one run's telemetry cache keeps within their TTL. */
  telemetryCacheMaxEntries: number;
  /** KASMINA_MAX_ANNOTATIONS: annotation entries per command. */
  maxAnnotations: number;
  /** KASMINA_MAX_ANNOTATION_BYTES: UTF-8 bytes of annotation keys and values (and issued_by) per command. */
  maxAnnotationBytes: number;
  /** KASMINA_MAX_REGISTERED_PARAMETERS: parameters (and buffers) per RegisterHost/RegisterTeacher. */
  maxRegisteredParameters: number;
}

/** Characters in an id a client sends: command, seed, blueprint and optimizer ids, parameter keys (DESIGN §2.0). */
export const MAX_ID_CHARS = 256;
/** Client input quoted in an error message is cut to this many characters (DESIGN §2.0). */
export const MAX_QUOTED_CHARS = 128;
/** Seconds a command may be issued in the future (CommandVerifier's default skew). */
export const FUTURE_SKEW_SECONDS = 5;

export type StateKind = "sqlite" | "memory" | "etcd";

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** A variable's trimmed value; unset or blank ⇒ undefined. */
export function raw(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function num(env: Env, name: string, fallback: number, check: (n: number) => string | undefined): number {
  const text = raw(env, name);
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new ConfigError(name, `expected a number, got ${JSON.stringify(text)}`);
  const problem = check(n);
  if (problem !== undefined) throw new ConfigError(name, `${problem}, got ${text}`);
  return n;
}

const nonNegative = (n: number): string | undefined => (n < 0 ? "must be >= 0" : undefined);
const positive = (n: number): string | undefined => (n <= 0 ? "must be > 0" : undefined);
const integer =
  (min: number, max = Number.MAX_SAFE_INTEGER) =>
  (n: number): string | undefined =>
    Number.isInteger(n) && n >= min && n <= max ? undefined : `must be an integer in [${min}, ${max}]`;

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const text = raw(env, name);
  if (text === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(text)) {
    throw new ConfigError(name, `expected one of ${allowed.join(", ")}, got ${JSON.stringify(text)}`);
  }
  return text as T;
}

/** A path variable whose file must be readable (ConfigError naming the variable otherwise). */
export function existingFile(env: Env, name: string): string | undefined {
  const path = raw(env, name);
  if (path === undefined) return undefined;
  try {
    readFileSync(path);
  } catch (error) {
    throw new ConfigError(name, `cannot read ${path}: ${(error as Error).message}`);
  }
  return path;
}

/**
 * The secret comes from the environment or from a file named by ESPER_LEYLINE_SECRET_FILE; it is
 * never logged. A blank secret would sign with an empty key, so it is refused; a file loses its
 * trailing whitespace (editors add newlines) and is reported when others may read it.
 */
function secret(env: Env, warnings: string[]): string | undefined {
  const direct = env["ESPER_LEYLINE_SECRET"];
  if (direct !== undefined && direct !== "") {
    if (direct.trim() === "") throw new ConfigError("ESPER_LEYLINE_SECRET", "is blank (only whitespace); set a real secret or unset it");
    return direct;
  }
  const file = raw(env, "ESPER_LEYLINE_SECRET_FILE");
  if (file === undefined) return undefined;
  let value: string;
  try {
    value = readFileSync(file, "utf8").replace(/\s+$/, "");
  } catch (error) {
    throw new ConfigError("ESPER_LEYLINE_SECRET_FILE", `cannot read ${file}: ${(error as Error).message}`);
  }
  if (value.trim() === "") throw new ConfigError("ESPER_LEYLINE_SECRET_FILE", `${file} is empty or blank`);
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    warnings.push(`ESPER_LEYLINE_SECRET_FILE: ${file} is readable by group or others (mode ${mode.toString(8).padStart(3, "0")}); chmod 600 it`);
  }
  return value;
}

/** A client CA file must hold at least one certificate, or every client would be refused at the handshake. */
function clientCa(env: Env): string | undefined {
  const path = existingFile(env, "KASMINA_TLS_CLIENT_CA");
  if (path === undefined) return undefined;
  const pem = readFileSync(path, "utf8");
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError("KASMINA_TLS_CLIENT_CA", `${path} holds no PEM certificate`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (error) {
      throw new ConfigError("KASMINA_TLS_CLIENT_CA", `${path} holds a certificate that does not parse: ${(error as Error).message}`);
    }
  }
  return path;
}

function limits(env: Env): KasminaLimits {
  const count = integer(1, 2 ** 31 - 1);
  const ms = integer(1, 2 ** 31 - 1);
  return {
    maxConcurrentStreams: num(env, "KASMINA_MAX_CONCURRENT_STREAMS", 64, integer(1, 2 ** 31 - 1)),
    streamIdleMs: num(env, "KASMINA_STREAM_IDLE_MS", 30_000, ms),
    connectionIdleMs: num(env, "KASMINA_MAX_CONNECTION_IDLE_MS", 300_000, ms),
    connectionAgeMs: num(env, "KASMINA_MAX_CONNECTION_AGE_MS", 3_600_000, ms),
    connectionAgeGraceMs: num(env, "KASMINA_MAX_CONNECTION_AGE_GRACE_MS", 60_000, ms),
    maxSessionParameters: num(env, "KASMINA_MAX_SESSION_PARAMETERS", 16_384, count),
    maxExactCopyBytes: num(env, "KASMINA_MAX_EXACT_COPY_BYTES", 1024 * 1024 * 1024, integer(0, Number.MAX_SAFE_INTEGER)),
    maxWatchers: num(env, "KASMINA_MAX_WATCHERS", 64, count),
    telemetryCacheMaxEntries: num(env, "KASMINA_TELEMETRY_CACHE_MAX_ENTRIES", 1024, count),
    maxAnnotations: num(env, "KASMINA_MAX_ANNOTATIONS", 64, count),
    maxAnnotationBytes: num(env, "KASMINA_MAX_ANNOTATION_BYTES", 16 * 1024, integer(256, 2 ** 31 - 1)),
    maxRegisteredParameters: num(env, "KASMINA_MAX_REGISTERED_PARAMETERS", 65_536, count),
  };
}

/** The limits when no variable is set. */
export const DEFAULT_LIMITS: Readonly<KasminaLimits> = Object.freeze(limits({}));

/** DESIGN §2.1: the default run's id follows the same rule as the metadata key. */
function runId(env: Env): string {
  const id = raw(env, "KASMINA_TRAINING_RUN_ID") ?? "default";
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(id)) {
    throw new ConfigError("KASMINA_TRAINING_RUN_ID", `expected 1-128 characters of [A-Za-z0-9._:-], got ${JSON.stringify(id.slice(0, 128))}`);
  }
  return id;
}

export function loadConfig(env: Env = process.env): KasminaConfig {
  const tlsCert = existingFile(env, "KASMINA_TLS_CERT");
  const tlsKey = existingFile(env, "KASMINA_TLS_KEY");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError(tlsCert === undefined ? "KASMINA_TLS_CERT" : "KASMINA_TLS_KEY", "TLS needs both KASMINA_TLS_CERT and KASMINA_TLS_KEY");
  }
  const tlsClientCa = clientCa(env);
  if (tlsClientCa !== undefined && tlsCert === undefined) {
    throw new ConfigError("KASMINA_TLS_CLIENT_CA", "mutual TLS needs KASMINA_TLS_CERT and KASMINA_TLS_KEY too");
  }
  const redisUrl = raw(env, "KASMINA_REDIS_URL") ?? "redis://127.0.0.1:6379";
  if (!/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError("KASMINA_REDIS_URL", `expected a redis:// or rediss:// URL, got ${JSON.stringify(redisUrl)}`);
  }
  const prometheus = raw(env, "KASMINA_PROMETHEUS_PORT");
  const host = raw(env, "KASMINA_HOST") ?? "127.0.0.1";
  const port = num(env, "KASMINA_PORT", 50051, integer(0, 65535));
  const state = oneOf<StateKind>(env, "KASMINA_STATE", "sqlite", ["sqlite", "memory", "etcd"]);
  const fallback = env["KASMINA_FALLBACK_BLUEPRINT"];
  const nonceTtlSeconds = num(env, "KASMINA_NONCE_TTL_SECONDS", 300, positive);
  const freshnessWindowSeconds = num(env, "KASMINA_FRESHNESS_WINDOW_SECONDS", 60, positive);
  // A command stays fresh through issued_at + window (inclusive), and issued_at may lie
  // FUTURE_SKEW_SECONDS ahead, while a ledger entry is gone at its expiry instant: a ledger that
  // does not outlive window + skew would accept the same fresh command again (DESIGN §2.0).
  if (nonceTtlSeconds <= freshnessWindowSeconds + FUTURE_SKEW_SECONDS) {
    throw new ConfigError(
      "KASMINA_NONCE_TTL_SECONDS",
      `${nonceTtlSeconds} s does not cover KASMINA_FRESHNESS_WINDOW_SECONDS (${freshnessWindowSeconds} s) plus the ${FUTURE_SKEW_SECONDS} s future skew; ` +
        `set it above ${freshnessWindowSeconds + FUTURE_SKEW_SECONDS} (for example ${Math.floor(freshnessWindowSeconds + FUTURE_SKEW_SECONDS) + 1})`,
    );
  }
  const warnings: string[] = [];
  return {
    secret: secret(env, warnings),
    host,
    port,
    bus: oneOf<BusKind>(env, "KASMINA_BUS", "none", ["none", "memory", "redis"]),
    redisUrl,
    cacheTtlSeconds: num(env, "KASMINA_CACHE_TTL_SECONDS", 300, positive),
    gcFrequency: num(env, "KASMINA_GC_FREQUENCY", 10, integer(-1_000_000)),
    latencyBudgetMs: num(env, "KASMINA_LATENCY_BUDGET_MS", 10, positive),
    // An explicitly empty value disables the fallback blueprint (identity kernel only).
    fallbackBlueprint: fallback === undefined ? "BP001" : fallback.trim() === "" ? undefined : fallback.trim(),
    embargoSeconds: num(env, "KASMINA_EMBARGO_SECONDS", 30, nonNegative),
    nonceTtlSeconds,
    freshnessWindowSeconds,
    projectionSamples: num(env, "KASMINA_PROJECTION_SAMPLES", 256, integer(0, 1 << 24)),
    isolationThreshold: num(env, "KASMINA_ISOLATION_THRESHOLD", 1e-6, nonNegative),
    isolationBackend: oneOf<IsolationBackendPreference>(env, "KASMINA_ISOLATION_BACKEND", "auto", [
      "auto",
      "tensorflow-gpu",
      "tensorflow",
      "wasm",
      "js",
    ]),
    blueprintCatalog: existingFile(env, "KASMINA_BLUEPRINT_CATALOG"),
    trainingRunId: runId(env),
    maxMessageBytes: num(env, "KASMINA_MAX_MESSAGE_BYTES", 16 * 1024 * 1024, integer(1024, 2 ** 31 - 1)),
    lifecyclePacing: oneOf<LifecyclePacing>(env, "KASMINA_LIFECYCLE_PACING", "driven", ["driven", "immediate"]),
    alphaTotalSteps: num(env, "KASMINA_ALPHA_TOTAL_STEPS", 20, integer(-1_000_000, 1_000_000)),
    alphaTemperature: num(env, "KASMINA_ALPHA_TEMPERATURE", 2.0, (n) => (Number.isFinite(n) ? undefined : "must be finite")),
    prometheusPort: prometheus === undefined ? undefined : num(env, "KASMINA_PROMETHEUS_PORT", 0, integer(0, 65535)),
    tlsCert,
    tlsKey,
    tlsClientCa,
    authToken: raw(env, "KASMINA_AUTH_TOKEN"),
    limits: limits(env),
    warnings,
    state,
    statePath: raw(env, "KASMINA_STATE_PATH") ?? "kasmina-data/kasmina.db",
    maxTrainingRuns: num(env, "KASMINA_MAX_TRAINING_RUNS", 64, integer(1, 1_000_000)),
    etcd: state === "etcd" ? loadEtcdConfig(env, host, port) : undefined,
  };
}
