// A grpc-js server interceptor in front of every service (KasminaService, reflection, health):
// the bearer token for all but health, and KASMINA_STREAM_IDLE_MS — while the server waits for a
// request message and none completes in time, the call ends with DEADLINE_EXCEEDED (DESIGN §2.0).
// A half-sent message therefore cannot pin memory: the stream ends and its buffer goes with it.
import {
  Metadata,
  ServerInterceptingCall,
  ServerListenerBuilder,
  status as Status,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from "@grpc/grpc-js";
import { authProblem } from "./auth.js";

export interface CallGuardOptions {
  authToken: string | undefined;
  streamIdleMs: number;
}

/** Services callable without the token: only health (README "Authentication"). */
const OPEN_PREFIX = "/grpc.health.v1.Health/";

class GuardedCall extends ServerInterceptingCall {
  constructor(
    next: ServerInterceptingCallInterface,
    private readonly guard: { reading(): void; stop(): void; ended(): boolean },
    authToken: string | undefined,
    open: boolean,
  ) {
    super(next, {
      start: (startNext) => {
        startNext(
          new ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, nextMetadata) => {
              const problem = open ? undefined : authProblem(authToken, metadata);
              if (problem !== undefined) {
                guard.stop();
                next.sendStatus({ code: Status.UNAUTHENTICATED, details: problem, metadata: new Metadata() });
                return;
              }
              nextMetadata(metadata);
            })
            .withOnReceiveMessage((message, nextMessage) => {
              guard.stop();
              nextMessage(message);
            })
            .withOnReceiveHalfClose((nextHalfClose) => {
              guard.stop();
              nextHalfClose();
            })
            .withOnCancel(() => guard.stop())
            .build(),
        );
      },
      sendStatus: (status, nextStatus) => {
        guard.stop();
        if (!guard.ended()) nextStatus(status);
      },
    });
  }

  /** The handler wants the next message: the client has streamIdleMs to deliver it whole. */
  override startRead(): void {
    this.guard.reading();
    super.startRead();
  }
}

export function callGuard(options: CallGuardOptions): ServerInterceptor {
  return (method, call) => {
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const stop = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    };
    const guard = {
      reading: () => {
        stop();
        if (timedOut) return;
        timer = setTimeout(() => {
          timer = undefined;
          timedOut = true;
          call.sendStatus({
            code: Status.DEADLINE_EXCEEDED,
            details: `no request message arrived within ${options.streamIdleMs} ms (KASMINA_STREAM_IDLE_MS); the call applied nothing`,
            metadata: new Metadata(),
          });
        }, options.streamIdleMs);
      },
      stop,
      // After the idle timeout the call is over; the handler's own late status is dropped.
      ended: () => timedOut,
    };
    return new GuardedCall(call, guard, options.authToken, method.path.startsWith(OPEN_PREFIX));
  };
}
