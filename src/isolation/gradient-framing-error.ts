// A client sent gradients the contract does not allow (DESIGN §2: INVALID_ARGUMENT). The code is a
// closed set so the RPC layer and tests can match on it; the message names the chunk and the problem.

export type GradientFramingCode =
  | "empty_param_key"
  | "unknown_side"
  | "bad_integer"
  | "numel_mismatch"
  | "misaligned_values"
  | "empty_chunk"
  | "out_of_range"
  | "overlap"
  | "incomplete"
  | "non_finite";

export class GradientFramingError extends Error {
  override readonly name = "GradientFramingError";

  constructor(
    readonly code: GradientFramingCode,
    message: string,
  ) {
    super(message);
  }
}
