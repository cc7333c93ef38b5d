// The bearer-token check (KASMINA_AUTH_TOKEN), shared by the call guard and the adapter.
// RFC 7235: the scheme is case-insensitive; one authorization header, exactly one token.
import { createHash, timingSafeEqual } from "node:crypto";
import type { Metadata } from "@grpc/grpc-js";

/**
 * Set by the server's HTTP/2 stream hook when a request carried more than one authorization
 * header field (node keeps only the first in the parsed headers); any client copy is removed first.
 */
export const DUPLICATE_AUTHORIZATION_MARK = "kasmina-internal-duplicate-authorization";

const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest();

const BEARER = /^bearer +([^\s,]+) *$/i;

/** Why the call is refused, or undefined when it may proceed (always when no token is configured). */
export function authProblem(token: string | undefined, metadata: Metadata): string | undefined {
  if (token === undefined) return undefined;
  const values = metadata.get("authorization");
  if (values.length > 1 || metadata.get(DUPLICATE_AUTHORIZATION_MARK).length > 0) {
    return "more than one authorization header; send exactly one (authorization: Bearer <token>)";
  }
  const header = values[0];
  const presented = typeof header === "string" ? (BEARER.exec(header)?.[1] ?? "") : "";
  // Fixed-length digests, compared in constant time: neither content nor length leaks by timing.
  const match = timingSafeEqual(digest(presented), digest(token));
  return presented !== "" && match ? undefined : "missing or invalid bearer token (metadata authorization: Bearer <token>)";
}
