// A pass would take the session past one of its bounds (DESIGN §2.0, README "Limits"):
// RESOURCE_EXHAUSTED at the RPC layer. The message names the limit and its variable.

export type GradientLimitCode = "session_parameters" | "exact_copy_bytes";

export class GradientLimitError extends Error {
  override readonly name = "GradientLimitError";

  constructor(
    readonly code: GradientLimitCode,
    message: string,
  ) {
    super(message);
  }
}
