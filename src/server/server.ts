// The grpc-js server: KasminaService through the async adapter, grpc.health.v1 and reflection.
import type { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { constants as http2Constants, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { join } from "node:path";
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import { ReflectionService } from "@grpc/reflection";
import { loadFileDescriptorSetFromBuffer, loadSync } from "@grpc/proto-loader";
import { KasminaServiceService, type ReportGradientsRequest } from "../../generated/esper/kasmina/v1/kasmina.js";
import { decodeApplyCommandRequest } from "./command-decode.js";
import { decodeGradientChunk } from "./gradient-chunk.js";
import { DEFAULT_LIMITS, type KasminaConfig } from "../config.js";
import { invalidArgument } from "../kasmina/errors.js";
import type { MetricsPort } from "../kasmina/ports.js";
import { repoRoot } from "../repo-root.js";
import { clientStream, serverStream, unary, type AdapterOptions } from "./adapter.js";
import { DUPLICATE_AUTHORIZATION_MARK } from "./auth.js";
import { callGuard } from "./call-guard.js";
import type { KasminaApi } from "./api.js";

export const KASMINA_SERVICE_NAME = "esper.kasmina.v1.KasminaService";

export interface ServerOptions {
  config: Pick<KasminaConfig, "host" | "port" | "maxMessageBytes" | "authToken" | "tlsCert" | "tlsKey" | "tlsClientCa"> & {
    /** Default: DEFAULT_LIMITS (config.ts). */
    limits?: Pick<KasminaConfig["limits"], "maxConcurrentStreams" | "streamIdleMs" | "connectionIdleMs" | "connectionAgeMs" | "connectionAgeGraceMs">;
  };
  api: KasminaApi;
  metrics: MetricsPort;
  log: (message: string) => void;
}

export interface RunningServer {
  readonly port: number;
  readonly address: string;
  /** Health of KasminaService and of the whole server ("" service). */
  setServing(serving: boolean): void;
  /** Health NOT_SERVING, then tryShutdown bounded by graceMs, then forceShutdown. */
  shutdown(graceMs?: number): Promise<void>;
}

type Definition = typeof KasminaServiceService;
type Method = Definition[keyof Definition];

/**
 * Requests reach the adapter as raw bytes and are decoded there, so malformed protobuf becomes
 * INVALID_ARGUMENT with a message instead of grpc-js's INTERNAL "error deserializing".
 */
function rawRequests(): ServiceDefinition {
  const out: Record<string, Method> = {};
  for (const [name, method] of Object.entries(KasminaServiceService) as [string, Method][]) {
    out[name] = { ...method, requestDeserialize: (bytes: Buffer) => bytes } as unknown as Method;
  }
  return out as unknown as ServiceDefinition;
}

function decoder<T>(method: Method): (bytes: Buffer) => T {
  return (bytes) => {
    try {
      return method.requestDeserialize(bytes) as T;
    } catch (error) {
      throw invalidArgument(`malformed ${method.path.split("/").pop() ?? ""} request: ${(error as Error).message}`);
    }
  };
}

function implementation(api: KasminaApi, options: AdapterOptions): UntypedServiceImplementation {
  const s = KasminaServiceService;
  const u = <Req, Res>(method: Method, handler: (req: Req, ctx: Parameters<KasminaApi["getStatus"]>[1]) => Promise<Res> | Res) => {
    const decode = decoder<Req>(method);
    return unary<Buffer, Res>(method.path, options, (bytes, ctx) => handler(decode(bytes), ctx));
  };
  const decodeChunk = (bytes: Buffer): ReportGradientsRequest => {
    try {
      return decodeGradientChunk(bytes);
    } catch (error) {
      throw invalidArgument(`malformed ReportGradients request: ${(error as Error).message}`);
    }
  };
  const decodeWatch = decoder<Parameters<KasminaApi["watchTelemetry"]>[0]>(s.watchTelemetry);
  return {
    applyCommand: unary<Buffer, Awaited<ReturnType<KasminaApi["applyCommand"]>>>(s.applyCommand.path, options, (bytes, ctx) => {
      let request;
      try {
        request = decodeApplyCommandRequest(bytes);
      } catch (error) {
        throw invalidArgument(`malformed ApplyCommand request: ${(error as Error).message}`);
      }
      return api.applyCommand(request, ctx);
    }),
    finalizeStep: u(s.finalizeStep, api.finalizeStep),
    updateEpoch: u(s.updateEpoch, api.updateEpoch),
    advanceAlpha: u(s.advanceAlpha, api.advanceAlpha),
    exportSeedStates: u(s.exportSeedStates, api.exportSeedStates),
    registerHost: u(s.registerHost, api.registerHost),
    registerTeacher: u(s.registerTeacher, api.registerTeacher),
    getIsolationStats: u(s.getIsolationStats, api.getIsolationStats),
    recordIsolationViolation: u(s.recordIsolationViolation, api.recordIsolationViolation),
    getRollbackPayload: u(s.getRollbackPayload, api.getRollbackPayload),
    drainTelemetry: u(s.drainTelemetry, api.drainTelemetry),
    getStatus: u(s.getStatus, api.getStatus),
    getProjection: u(s.getProjection, api.getProjection),
    reportGradientSketch: u(s.reportGradientSketch, api.reportGradientSketch),
    listTrainingRuns: u(s.listTrainingRuns, api.listTrainingRuns),
    closeTrainingRun: u(s.closeTrainingRun, api.closeTrainingRun),
    reportGradients: clientStream<Buffer, Awaited<ReturnType<KasminaApi["reportGradients"]>>>(
      s.reportGradients.path,
      options,
      (chunks, ctx) =>
        api.reportGradients(
          (async function* () {
            for await (const bytes of chunks) yield decodeChunk(bytes);
          })(),
          ctx,
        ),
    ),
    watchTelemetry: serverStream<Buffer, Parameters<Parameters<KasminaApi["watchTelemetry"]>[1]>[0]>(
      s.watchTelemetry.path,
      options,
      (bytes, write, ctx) => api.watchTelemetry(decodeWatch(bytes), write, ctx),
    ),
  };
}

function credentials(config: ServerOptions["config"]): ServerCredentials {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return ServerCredentials.createInsecure();
  const ca = config.tlsClientCa === undefined ? null : readFileSync(config.tlsClientCa);
  return ServerCredentials.createSsl(
    ca,
    [{ cert_chain: readFileSync(config.tlsCert), private_key: readFileSync(config.tlsKey) }],
    ca !== null,
  );
}

/** Reflection needs descriptors: the buf-built set for our protos, merged with the health proto. */
function reflection(): ReflectionService {
  const descriptorSet = readFileSync(join(repoRoot(), "generated", "kasmina.binpb"));
  const ours = loadFileDescriptorSetFromBuffer(descriptorSet);
  const health = loadSync(healthProtoPath);
  return new ReflectionService({ ...health, ...ours });
}

/**
 * grpc-js applies `grpc-node.flow_control_window` on the client side only; the server keeps
 * HTTP/2's 64 KiB default, so a client streaming 4 MiB gradient chunks stalls whenever the server
 * is busy reducing the previous chunk. Widening the window of every accepted session lets the
 * transfer continue meanwhile (DESIGN §5; measured with npm run bench:report-gradients).
 * grpc-js has no public hook for this, so it reaches its HTTP/2 servers and degrades to a no-op
 * (logged) if their shape changes.
 */
export const FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

/**
 * grpc-js's HTTP/2 servers (a private field, pinned grpc-js version: package.json). Every step is
 * checked, so a shape change logs and leaves the defaults instead of failing start-up.
 */
function http2ServersOf(server: Server, log: (message: string) => void, what: string): EventEmitter[] {
  try {
    const internal = (server as unknown as { http2Servers?: unknown }).http2Servers;
    if (!(internal instanceof Map)) throw new Error("Server.http2Servers is not a Map");
    const servers = [...(internal as Map<unknown, unknown>).keys()];
    for (const candidate of servers) {
      const on = (candidate as { on?: unknown; prependListener?: unknown } | null)?.on;
      const prepend = (candidate as { prependListener?: unknown } | null)?.prependListener;
      if (typeof on !== "function" || typeof prepend !== "function") throw new Error("an HTTP/2 server is not an EventEmitter");
    }
    return servers as EventEmitter[];
  } catch (error) {
    log(`grpc-js internals changed (${(error as Error).message}): ${what}`);
    return [];
  }
}

export function widenFlowControlWindow(server: Server, window: number, log: (message: string) => void): void {
  for (const http2Server of http2ServersOf(server, log, "the server keeps HTTP/2's default flow-control window")) {
    http2Server.on("session", (session: Http2Session) => {
      try {
        session.setLocalWindowSize(window);
        session.settings({ initialWindowSize: window });
      } catch (error) {
        log(`could not widen the HTTP/2 flow-control window: ${(error as Error).message}`);
      }
    });
  }
}

/**
 * Per-stream transport rules grpc-js has no option for:
 * - node keeps only the first of repeated authorization header fields in the parsed headers; the
 *   raw list still has them all. This runs before grpc-js sees the stream and marks such a
 *   request, so the call guard refuses it (UNAUTHENTICATED) instead of silently using the first.
 * - once the server has sent its whole response (a status after a rejection or the idle
 *   timeout) while the client is still sending, the stream is reset with NO_ERROR (RFC 9113
 *   §8.1), so the server stops reading and a half-sent message is not kept for the client's sake.
 */
export function guardStreams(server: Server, log: (message: string) => void): void {
  for (const http2Server of http2ServersOf(server, log, "repeated authorization headers are not detected and finished streams are not reset")) {
    http2Server.prependListener("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: unknown) => {
      try {
        delete headers[DUPLICATE_AUTHORIZATION_MARK];
        if (Array.isArray(raw)) {
          let seen = 0;
          for (let i = 0; i < raw.length; i += 2) if (String(raw[i]).toLowerCase() === "authorization") seen += 1;
          if (seen > 1) headers[DUPLICATE_AUTHORIZATION_MARK] = "1";
        }
        stream.once("finish", () => {
          if (!stream.readableEnded && !stream.destroyed) stream.close(http2Constants.NGHTTP2_NO_ERROR);
        });
      } catch (error) {
        log(`could not guard an HTTP/2 stream: ${(error as Error).message}`);
      }
    });
  }
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { config, log } = options;
  const limits = config.limits ?? DEFAULT_LIMITS;
  const server = new Server({
    "grpc.max_receive_message_length": config.maxMessageBytes,
    "grpc.max_send_message_length": config.maxMessageBytes,
    // DESIGN §2.0: what one connection can hold. Streams are advertised in SETTINGS.
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
    "grpc.max_connection_idle_ms": limits.connectionIdleMs,
    "grpc.max_connection_age_ms": limits.connectionAgeMs,
    "grpc.max_connection_age_grace_ms": limits.connectionAgeGraceMs,
    interceptors: [callGuard({ authToken: config.authToken, streamIdleMs: limits.streamIdleMs })],
  });
  const drainOver = new AbortController();
  const adapterOptions: AdapterOptions = {
    shuttingDown: drainOver.signal,
    log,
    duration: options.metrics.histogram("rpc.server.call.duration", "Duration of inbound gRPC calls", "s"),
  };
  server.addService(rawRequests(), implementation(options.api, adapterOptions));
  const health = new HealthImplementation({ "": "NOT_SERVING", [KASMINA_SERVICE_NAME]: "NOT_SERVING" });
  health.addToServer(server);
  reflection().addToServer(server);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${config.host.includes(":") ? `[${config.host}]` : config.host}:${config.port}`, credentials(config), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  widenFlowControlWindow(server, FLOW_CONTROL_WINDOW, log);
  guardStreams(server, log);
  let draining = false;
  const setServing = (serving: boolean): void => {
    const status = serving && !draining ? "SERVING" : "NOT_SERVING";
    health.setStatus("", status);
    health.setStatus(KASMINA_SERVICE_NAME, status);
  };
  setServing(true);

  return {
    port,
    address: `${config.host}:${port}`,
    setServing,
    async shutdown(graceMs = 5000) {
      draining = true;
      setServing(false);
      await new Promise<void>((resolve) => {
        // At the grace's end, open client streams are ended with UNAVAILABLE; whatever is still
        // open a moment later is cut off.
        const endStreams = setTimeout(() => drainOver.abort(), graceMs);
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs + 500);
        server.tryShutdown(() => {
          clearTimeout(endStreams);
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
