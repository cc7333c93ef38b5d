// The single mapping from domain errors to gRPC status codes.
import { status as Status, type ServiceError, Metadata } from "@grpc/grpc-js";
import { KasminaError, type KasminaErrorCode } from "../kasmina/errors.js";
import { OWNER_METADATA_KEY, RunOwnedElsewhere } from "../kasmina/run-ownership.js";

const CODES: Record<KasminaErrorCode, Status> = {
  invalid_argument: Status.INVALID_ARGUMENT,
  not_found: Status.NOT_FOUND,
  failed_precondition: Status.FAILED_PRECONDITION,
  permission_denied: Status.PERMISSION_DENIED,
  resource_exhausted: Status.RESOURCE_EXHAUSTED,
  deadline_exceeded: Status.DEADLINE_EXCEEDED,
  unavailable: Status.UNAVAILABLE,
  unauthenticated: Status.UNAUTHENTICATED,
  unimplemented: Status.UNIMPLEMENTED,
  internal: Status.INTERNAL,
};

export function toServiceError(error: unknown, log: (message: string) => void): Partial<ServiceError> {
  const normalised = KasminaError.from(error);
  if (!(error instanceof KasminaError)) {
    // Internal details go to the log, never to the client.
    log(`internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }
  const metadata = new Metadata();
  // DESIGN §2.4: the replica that serves the run, so the client can send the call there.
  if (error instanceof RunOwnedElsewhere) metadata.set(OWNER_METADATA_KEY, error.owner);
  return { code: CODES[normalised.code], details: normalised.message, metadata };
}
