// Configuration of replicas over etcd (DESIGN §2.4), read only when KASMINA_STATE=etcd. Credentials
// come from the environment (or a file) and are never logged or shown by GetStatus.
import { readFileSync } from "node:fs";
import { ConfigError, existingFile, raw } from "./config.js";

export interface EtcdConfig {
  /** KASMINA_ETCD_ENDPOINTS, comma separated (http:// or https:// URLs). */
  endpoints: string[];
  /** KASMINA_LEASE_MS: a replica serves a run at most this long without a confirmed keep-alive. */
  leaseMs: number;
  /** KASMINA_ADVERTISE_ADDRESS: HOST:PORT other replicas send clients to (kasmina-owner). */
  advertise: string;
  auth: { username: string; password: string } | undefined;
  tls: { ca: string; cert: string | undefined; key: string | undefined } | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;


export function loadEtcdConfig(env: Env, host: string, port: number): EtcdConfig {
  const endpointsText = raw(env, "KASMINA_ETCD_ENDPOINTS") ?? "http://127.0.0.1:2379";
  const endpoints = endpointsText.split(",").map((e) => e.trim()).filter((e) => e !== "");
  for (const e of endpoints) {
    if (!/^https?:\/\/[^\s/]+$/.test(e.replace(/\/$/, ""))) {
      throw new ConfigError("KASMINA_ETCD_ENDPOINTS", `expected comma-separated http:// or https:// URLs (host:port), got ${JSON.stringify(e.replace(/\/\/[^@/]*@/, "//"))}`);
    }
  }
  if (endpoints.length === 0) throw new ConfigError("KASMINA_ETCD_ENDPOINTS", "needs at least one etcd endpoint");
  const leaseText = raw(env, "KASMINA_LEASE_MS");
  const leaseMs = leaseText === undefined ? 10_000 : Number(leaseText);
  // etcd leases have whole seconds and a floor of about 1.5 s (its election timeout); below 2 s a
  // busy etcd would expire leases that were kept alive.
  if (!Number.isInteger(leaseMs) || leaseMs < 2000 || leaseMs > 3_600_000) {
    throw new ConfigError("KASMINA_LEASE_MS", `must be an integer in [2000, 3600000], got ${leaseText}`);
  }
  let advertise = raw(env, "KASMINA_ADVERTISE_ADDRESS");
  if (advertise === undefined) {
    if (port === 0) throw new ConfigError("KASMINA_ADVERTISE_ADDRESS", "is needed with KASMINA_STATE=etcd when KASMINA_PORT=0 (other replicas send clients to it)");
    advertise = `${host}:${port}`;
  }
  if (!/^[^\s:]+:\d{1,5}$/.test(advertise) && !/^\[[0-9a-fA-F:.]+\]:\d{1,5}$/.test(advertise)) {
    throw new ConfigError("KASMINA_ADVERTISE_ADDRESS", `expected HOST:PORT, got ${JSON.stringify(advertise)}`);
  }
  const username = raw(env, "KASMINA_ETCD_USERNAME");
  let password = env["KASMINA_ETCD_PASSWORD"];
  const passwordFile = raw(env, "KASMINA_ETCD_PASSWORD_FILE");
  if ((password === undefined || password === "") && passwordFile !== undefined) {
    try {
      password = readFileSync(passwordFile, "utf8").replace(/\r?\n$/, "");
    } catch (error) {
      throw new ConfigError("KASMINA_ETCD_PASSWORD_FILE", `cannot read ${passwordFile}: ${(error as Error).message}`);
    }
  }
  const hasPassword = password !== undefined && password !== "";
  if ((username === undefined) !== !hasPassword) {
    throw new ConfigError(username === undefined ? "KASMINA_ETCD_USERNAME" : "KASMINA_ETCD_PASSWORD", "etcd authentication needs both KASMINA_ETCD_USERNAME and KASMINA_ETCD_PASSWORD (or KASMINA_ETCD_PASSWORD_FILE)");
  }
  const ca = existingFile(env, "KASMINA_ETCD_CA");
  const cert = existingFile(env, "KASMINA_ETCD_CERT");
  const key = existingFile(env, "KASMINA_ETCD_KEY");
  if ((cert === undefined) !== (key === undefined)) throw new ConfigError(cert === undefined ? "KASMINA_ETCD_CERT" : "KASMINA_ETCD_KEY", "a client certificate needs both KASMINA_ETCD_CERT and KASMINA_ETCD_KEY");
  if (cert !== undefined && ca === undefined) throw new ConfigError("KASMINA_ETCD_CA", "TLS to etcd with a client certificate needs KASMINA_ETCD_CA too");
  if (ca !== undefined && endpoints.some((e) => e.startsWith("http://"))) {
    throw new ConfigError("KASMINA_ETCD_ENDPOINTS", "KASMINA_ETCD_CA is set, so every endpoint must be https://");
  }
  return {
    endpoints,
    leaseMs,
    advertise,
    auth: username === undefined || password === undefined ? undefined : { username, password },
    tls: ca === undefined ? undefined : { ca, cert, key },
  };
}
