// One error class with a closed code set (DESIGN §4, after connect-es). The domain throws these;
// src/server/status.ts is the only place that turns them into gRPC status codes.

export type KasminaErrorCode =
  | "invalid_argument"
  | "not_found"
  | "failed_precondition"
  | "permission_denied"
  | "resource_exhausted"
  | "deadline_exceeded"
  | "unavailable"
  | "unauthenticated"
  | "unimplemented"
  | "internal";

export class KasminaError extends Error {
  constructor(
    readonly code: KasminaErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "KasminaError";
  }

  /** Normalise anything thrown into a KasminaError; unknown errors become `internal` with a generic message. */
  static from(error: unknown): KasminaError {
    if (error instanceof KasminaError) return error;
    return new KasminaError("internal", "internal error (see server log)");
  }
}

export const invalidArgument = (message: string): KasminaError => new KasminaError("invalid_argument", message);
export const notFound = (message: string): KasminaError => new KasminaError("not_found", message);
export const failedPrecondition = (message: string): KasminaError => new KasminaError("failed_precondition", message);
export const resourceExhausted = (message: string): KasminaError => new KasminaError("resource_exhausted", message);
