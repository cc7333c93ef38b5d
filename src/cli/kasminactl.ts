#!/usr/bin/env node
// kasminactl: the operator's client for a running Kasmina. One subcommand per question an operator
// asks (status, runs, seeds, watch, drain) or action they take (send a signed command, close a run).
// Tables for people, --json for scripts; a failed call prints the gRPC code name and the server's
// message and exits non-zero.
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { credentials, Metadata, status as Status, type CallOptions, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import type {
  WatchTelemetryResponse} from "../../generated/esper/kasmina/v1/kasmina.js";
import {
  DrainTelemetryResponse,
  ExportSeedStatesResponse,
  GetStatusResponse,
  KasminaServiceClient,
  ListTrainingRunsResponse,
  ApplyCommandResponse,
  CloseTrainingRunResponse
} from "../../generated/esper/kasmina/v1/kasmina.js";
import { signCommand } from "../kasmina/command-verifier.js";
import { AdaptationCommand, TelemetryPacket } from "../leyline.js";
import { eventsText, packetText, runsText, seedsText, stageName, statusText } from "./format.js";

export const EXIT_OK = 0;
/** The server answered with an error status, or could not be reached. */
export const EXIT_RPC = 1;
/** Bad flags, a missing or malformed file, no secret: nothing was sent. */
export const EXIT_USAGE = 2;

const HELP = `kasminactl — operate a running Kasmina

Usage: kasminactl [flags] COMMAND [ARGS]

Commands:
  status              service status for the selected run (GetStatus)
  runs                training runs and their summaries (ListTrainingRuns)
  seeds               seeds of the selected run and their stages (ExportSeedStates)
  watch               stream live telemetry packets (WatchTelemetry); --count N stops after N
  drain               take queued telemetry packets, oldest first (DrainTelemetry); --max N
  send FILE.json      sign and apply an AdaptationCommand written in proto3 JSON (ApplyCommand);
                      issuedAt defaults to now and commandId to a fresh UUID; the HMAC secret comes
                      from ESPER_LEYLINE_SECRET or the file named by ESPER_LEYLINE_SECRET_FILE
  close-run RUN       retire every seed of RUN and delete its state (CloseTrainingRun)

Flags:
  --target HOST:PORT  server address (default $KASMINA_TARGET or 127.0.0.1:50051)
  --tls               use TLS (system roots unless --ca)
  --ca FILE           CA certificate to verify the server (implies --tls)
  --cert FILE --key FILE
                      client certificate and key for mutual TLS (implies --tls)
  --token TOKEN       bearer token (default $KASMINA_AUTH_TOKEN)
  --run RUN           training run, sent as metadata kasmina-training-run (default: the server's)
  --timeout SECONDS   deadline of each unary call (default 10)
  --json              machine-readable output (proto3 JSON; watch prints one object per line)
  -h, --help          this text

Exit codes: 0 success, 1 the call failed (the gRPC code and the server's message are printed),
2 bad usage or input (nothing was sent).`;

class UsageError extends Error {}

interface Options {
  target: string;
  tls: boolean;
  ca: string | undefined;
  cert: string | undefined;
  key: string | undefined;
  token: string | undefined;
  run: string | undefined;
  json: boolean;
  timeoutSeconds: number;
  count: number | undefined;
  max: number;
}

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env: Readonly<Record<string, string | undefined>>;
}

function parse(argv: readonly string[], env: Io["env"]): { options: Options; command: string | undefined; args: string[]; help: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        target: { type: "string" },
        tls: { type: "boolean", default: false },
        ca: { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
        token: { type: "string" },
        run: { type: "string" },
        json: { type: "boolean", default: false },
        timeout: { type: "string" },
        count: { type: "string" },
        max: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const v = parsed.values;
  const count = (name: string, text: string | undefined, min: number): number | undefined => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
    return n;
  };
  const timeout = v.timeout === undefined ? 10 : Number(v.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`--timeout must be a number of seconds > 0, got ${JSON.stringify(v.timeout)}`);
  if ((v.cert === undefined) !== (v.key === undefined)) throw new UsageError("--cert and --key go together (mutual TLS needs both)");
  const token = v.token ?? env["KASMINA_AUTH_TOKEN"];
  return {
    options: {
      target: v.target ?? env["KASMINA_TARGET"] ?? "127.0.0.1:50051",
      tls: v.tls === true || v.ca !== undefined || v.cert !== undefined,
      ca: v.ca,
      cert: v.cert,
      key: v.key,
      token: token === "" ? undefined : token,
      run: v.run,
      json: v.json === true,
      timeoutSeconds: timeout,
      count: count("count", v.count, 1),
      max: count("max", v.max, 0) ?? 0,
    },
    command: parsed.positionals[0],
    args: parsed.positionals.slice(1),
    help: v.help === true,
  };
}

function readFile(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`${flag} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function channelCredentials(o: Options): ChannelCredentials {
  if (!o.tls) return credentials.createInsecure();
  return credentials.createSsl(
    o.ca === undefined ? null : readFile(o.ca, "--ca"),
    o.key === undefined ? null : readFile(o.key, "--key"),
    o.cert === undefined ? null : readFile(o.cert, "--cert"),
  );
}

function metadata(o: Options): Metadata {
  const md = new Metadata();
  if (o.token !== undefined) md.set("authorization", `Bearer ${o.token}`);
  if (o.run !== undefined) md.set("kasmina-training-run", o.run);
  return md;
}

/** Same rules as the server's (config.ts): the variable, else the file without its final newline. */
function signingSecret(env: Io["env"]): string {
  const direct = env["ESPER_LEYLINE_SECRET"];
  if (direct !== undefined && direct !== "") return direct;
  const file = env["ESPER_LEYLINE_SECRET_FILE"]?.trim();
  if (file === undefined || file === "") throw new UsageError("send needs the signing secret: set ESPER_LEYLINE_SECRET or ESPER_LEYLINE_SECRET_FILE");
  const value = readFile(file, "ESPER_LEYLINE_SECRET_FILE").toString("utf8").replace(/\r?\n$/, "");
  if (value === "") throw new UsageError(`ESPER_LEYLINE_SECRET_FILE ${file} is empty`);
  return value;
}

/** The command in FILE (proto3 JSON, via the generated fromJSON), completed and signed. */
export function commandFromFile(path: string, env: Io["env"], now: () => number = Date.now): AdaptationCommand {
  const secret = signingSecret(env);
  let json: unknown;
  try {
    json = JSON.parse(readFile(path, "send").toString("utf8"));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`send ${path}: not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new UsageError(`send ${path}: expected a JSON object (an AdaptationCommand)`);
  let command: AdaptationCommand;
  try {
    command = AdaptationCommand.fromJSON(json);
  } catch (error) {
    throw new UsageError(`send ${path}: not an AdaptationCommand (${(error as Error).message})`);
  }
  if (command.commandId === "") command.commandId = randomUUID();
  if (command.issuedAt === undefined) {
    const ms = now();
    command.issuedAt = { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
  }
  // ts-proto's encoder omits a map value of -0 (it tests `!== 0`), so the server would see +0 and
  // the signature over -0 would not match: send the value it will decode.
  const payload = command.payload;
  const floats = payload?.$case === "seedOperation" ? payload.value.parameters : payload?.$case === "optimizerAdjustment" ? payload.value.hyperparameters : undefined;
  for (const [key, value] of floats ?? []) if (Object.is(value, -0)) floats?.set(key, 0);
  // A signature in the file would be stale once issuedAt or commandId changed: always sign afresh.
  command.annotations.delete("signature");
  command.annotations.set("signature", signCommand(command, secret));
  return command;
}

type Callback<Res> = (error: ServiceError | null, response: Res) => void;
type UnaryMethod<Req, Res> = (request: Req, metadata: Metadata, options: Partial<CallOptions>, callback: Callback<Res>) => unknown;

class RpcError extends Error {
  constructor(
    readonly rpc: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`${rpc} failed: ${Status[code] ?? `code ${code}`}: ${details}`);
  }
}

function toRpcError(rpc: string, error: ServiceError): RpcError {
  return new RpcError(rpc, error.code, error.details || error.message);
}

export async function main(argv: readonly string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv, io.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`kasminactl: ${error.message}\nRun kasminactl --help for usage.`);
    return EXIT_USAGE;
  }
  const { options: o, command, args, help } = parsed;
  if (help || command === undefined) {
    (help ? io.out : io.err)(HELP);
    return help ? EXIT_OK : EXIT_USAGE;
  }
  const print = (json: unknown, text: () => string): void => io.out(o.json ? JSON.stringify(json, null, 2) : text());
  let client: KasminaServiceClient | undefined;
  try {
    const wantArgs = (n: number, usage: string): void => {
      if (args.length !== n) throw new UsageError(`usage: kasminactl ${usage}`);
    };
    // Validate the subcommand and its input before any connection is made.
    const known = ["status", "runs", "seeds", "watch", "drain", "send", "close-run"];
    if (!known.includes(command)) throw new UsageError(`unknown command ${JSON.stringify(command)} (one of ${known.join(", ")})`);
    wantArgs(command === "send" || command === "close-run" ? 1 : 0, command === "send" ? "send FILE.json" : command === "close-run" ? "close-run RUN" : command);
    const toSend = command === "send" ? commandFromFile(args[0] ?? "", io.env) : undefined;
    const c = new KasminaServiceClient(o.target, channelCredentials(o));
    client = c;
    const unary = <Req, Res>(rpc: string, method: UnaryMethod<Req, Res>, request: Req): Promise<Res> =>
      new Promise((resolve, reject) => {
        method.call(c, request, metadata(o), { deadline: Date.now() + o.timeoutSeconds * 1000 }, (error, response) =>
          error ? reject(toRpcError(rpc, error)) : resolve(response),
        );
      });
    switch (command) {
      case "status": {
        const s = await unary("GetStatus", c.getStatus, {});
        print(GetStatusResponse.toJSON(s), () => statusText(s));
        break;
      }
      case "runs": {
        const r = await unary("ListTrainingRuns", c.listTrainingRuns, {});
        print(ListTrainingRunsResponse.toJSON(r), () => runsText(r.runs));
        break;
      }
      case "seeds": {
        const r = await unary("ExportSeedStates", c.exportSeedStates, {});
        print(ExportSeedStatesResponse.toJSON(r), () => seedsText(r.seeds, r.currentEpoch));
        break;
      }
      case "drain": {
        const r = await unary("DrainTelemetry", c.drainTelemetry, { maxPackets: o.max });
        print(DrainTelemetryResponse.toJSON(r), () =>
          [...r.packets.map(packetText), `${r.packets.length} packet(s); ${r.remainingPackets} remaining; ${r.droppedPackets} dropped by the log so far`].join("\n"),
        );
        break;
      }
      case "send": {
        const command = toSend as AdaptationCommand;
        const r = await unary("ApplyCommand", c.applyCommand, { command });
        print(ApplyCommandResponse.toJSON(r), () => {
          const seed = r.seed === undefined ? "" : `\nseed ${r.seed.seedId}: ${stageName(r.seed.stage)}`;
          return `command ${command.commandId} applied${seed}\n${eventsText(r.events)}`;
        });
        break;
      }
      case "close-run": {
        const run = args[0] ?? "";
        const r = await unary("CloseTrainingRun", c.closeTrainingRun, { trainingRunId: run });
        print(CloseTrainingRunResponse.toJSON(r), () => `training run ${run} closed: ${r.seedsRetired} seed(s) retired`);
        break;
      }
      case "watch":
        await watch(c, o, io);
        break;
    }
    return EXIT_OK;
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`kasminactl: ${error.message}`);
      return EXIT_USAGE;
    }
    if (error instanceof RpcError) {
      io.err(o.json ? JSON.stringify({ error: { rpc: error.rpc, code: Status[error.code] ?? error.code, message: error.details } }) : `kasminactl: ${error.message}`);
      return EXIT_RPC;
    }
    throw error;
  } finally {
    client?.close();
  }
}

/** Prints packets as they arrive until --count is reached, the server ends the stream, or SIGINT. */
async function watch(client: KasminaServiceClient, o: Options, io: Io): Promise<void> {
  const call = client.watchTelemetry({}, metadata(o));
  let seen = 0;
  const stopOnSignal = (): void => call.cancel();
  process.once("SIGINT", stopOnSignal);
  try {
    await new Promise<void>((resolve, reject) => {
      call.on("data", (response: WatchTelemetryResponse) => {
        const packet = response.packet;
        if (packet === undefined || seen === o.count) return;
        seen += 1;
        io.out(o.json ? JSON.stringify(TelemetryPacket.toJSON(packet)) : packetText(packet));
        if (seen === o.count) {
          call.cancel();
          resolve();
        }
      });
      call.on("end", () => resolve());
      call.on("error", (error: ServiceError) => (error.code === Status.CANCELLED ? resolve() : reject(toRpcError("WatchTelemetry", error))));
    });
  } finally {
    process.off("SIGINT", stopOnSignal);
  }
}

// Run when executed (bin entry or `node dist/src/cli/kasminactl.js`), not when imported by a test.
// npm's bin entry is a symlink, so compare real paths.
const entry = process.argv[1];
if (entry !== undefined && realpathSync(entry) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2), { out: (t) => console.log(t), err: (t) => console.error(t), env: process.env }).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(`kasminactl: internal error: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    },
  );
}
