// grpc-js has no async handlers. This adapter runs plain async functions for the three call shapes,
// checks the bearer token, times every call, and turns every thrown value into a status through
// status.ts, so no error reaches a client as UNKNOWN with internal text.
import type {
  handleClientStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  Metadata,
  ServerReadableStream,
  ServerWritableStream,
  ServerUnaryCall,
  sendUnaryData,
} from "@grpc/grpc-js";
import { status as Status } from "@grpc/grpc-js";
import { KasminaError } from "../kasmina/errors.js";
import type { Histogram } from "../kasmina/ports.js";
import { toServiceError } from "./status.js";

export interface CallContext {
  readonly method: string;
  readonly metadata: Metadata;
  /** Aborted when the client cancels or the deadline passes. */
  readonly signal: AbortSignal;
}

export interface AdapterOptions {
  duration: Histogram;
  log: (message: string) => void;
  /**
   * Aborted when the server's drain grace is over: client streams still open are ended with
   * UNAVAILABLE (nothing of them applied; the client may retry) instead of being cut off.
   */
  shuttingDown?: AbortSignal;
}

// The bearer token is checked once per call, by the call guard in front of every service
// (server.ts), before a handler here runs.
const SHUTTING_DOWN = "the server is shutting down: this stream was not applied; send it again";

interface CancellableCall {
  readonly metadata: Metadata;
  on(event: "cancelled", listener: () => void): unknown;
}

function contextFor(method: string, call: CancellableCall): CallContext {
  const controller = new AbortController();
  call.on("cancelled", () => controller.abort(new KasminaError("unavailable", "call cancelled by the client")));
  return { method, metadata: call.metadata, signal: controller.signal };
}

function finish(options: AdapterOptions, method: string, started: number, code: Status): void {
  options.duration.record((performance.now() - started) / 1000, {
    "rpc.system": "grpc",
    "rpc.method": method,
    "rpc.grpc.status_code": String(code),
  });
}

export function unary<Req, Res>(
  method: string,
  options: AdapterOptions,
  handler: (request: Req, context: CallContext) => Promise<Res> | Res,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const started = performance.now();
    const run = async (): Promise<Res> => {
      return handler(call.request, contextFor(method, call));
    };
    run().then(
      (response) => {
        finish(options, method, started, Status.OK);
        callback(null, response);
      },
      (error: unknown) => {
        const serviceError = toServiceError(error, options.log);
        finish(options, method, started, serviceError.code ?? Status.UNKNOWN);
        callback(serviceError);
      },
    );
  };
}

export function clientStream<Req, Res>(
  method: string,
  options: AdapterOptions,
  handler: (requests: AsyncIterable<Req>, context: CallContext) => Promise<Res>,
): handleClientStreamingCall<Req, Res> {
  return (call: ServerReadableStream<Req, Res>, callback: sendUnaryData<Res>) => {
    const started = performance.now();
    const context = contextFor(method, call);
    let shutDown = false;
    const onShutdown = (): void => {
      shutDown = true;
      // Ends the handler's read loop; a pass is applied only at the end of a whole stream.
      call.destroy();
    };
    options.shuttingDown?.addEventListener("abort", onShutdown, { once: true });
    const run = async (): Promise<Res> => {
      // The call is a Readable in object mode: async iteration pulls one message at a time, which
      // gives the stream its backpressure.
      return handler(call as AsyncIterable<Req>, context);
    };
    const settled = (): void => options.shuttingDown?.removeEventListener("abort", onShutdown);
    run().then(
      (response) => {
        settled();
        finish(options, method, started, Status.OK);
        callback(null, response);
      },
      (error: unknown) => {
        settled();
        const cause = shutDown ? new KasminaError("unavailable", SHUTTING_DOWN) : context.signal.aborted ? context.signal.reason : error;
        const serviceError = toServiceError(cause, options.log);
        finish(options, method, started, serviceError.code ?? Status.UNKNOWN);
        // Stop reading the rest of a rejected stream.
        call.destroy();
        callback(serviceError);
      },
    );
  };
}

export function serverStream<Req, Res>(
  method: string,
  options: AdapterOptions,
  handler: (request: Req, write: (response: Res) => Promise<void>, context: CallContext) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call: ServerWritableStream<Req, Res>) => {
    const started = performance.now();
    const context = contextFor(method, call);
    // Honour the transport's backpressure: wait for drain when the write buffer is full.
    const write = (response: Res): Promise<void> =>
      new Promise((resolve, reject) => {
        if (context.signal.aborted) {
          reject(context.signal.reason);
          return;
        }
        if (call.write(response)) {
          resolve();
          return;
        }
        const onDrain = (): void => {
          context.signal.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = (): void => {
          call.off("drain", onDrain);
          reject(context.signal.reason);
        };
        call.once("drain", onDrain);
        context.signal.addEventListener("abort", onAbort, { once: true });
      });
    const run = async (): Promise<void> => {
      await handler(call.request, write, context);
    };
    run().then(
      () => {
        finish(options, method, started, Status.OK);
        call.end();
      },
      (error: unknown) => {
        if (context.signal.aborted) {
          finish(options, method, started, Status.CANCELLED);
          return;
        }
        const serviceError = toServiceError(error, options.log);
        finish(options, method, started, serviceError.code ?? Status.UNKNOWN);
        call.emit("error", serviceError);
      },
    );
  };
}
