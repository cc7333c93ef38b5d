// Regression test: genuine Python-signed commands were refused as invalid_signature when an
// annotation key is `__proto__` or a Struct Value is empty. Replays the recordings made by
// test/fixtures/signing/make_edge_cases.py through the verifier and through ApplyCommand over a
// real socket, with the request bytes exactly as the Python sender wrote them.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { canonicalCommandBytes } from "../../src/kasmina/canonical-command.js";
import { CommandVerifier } from "../../src/kasmina/command-verifier.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { AdaptationCommand } from "../../src/leyline.js";
import { decodeAdaptationCommand } from "../../src/server/command-decode.js";
import { startHarness, type Harness } from "../support/harness.js";
import { fixturesDir } from "../support/fixtures.js";

interface EdgeCases {
  generator: string;
  secret: string;
  now_unix_seconds: number;
  freshness_window_seconds: number;
  future_skew_seconds: number;
  nonce_ttl_seconds: number;
  cases: { name: string; command_b64: string; expect: string }[];
}

const fixture = JSON.parse(readFileSync(join(fixturesDir(), "signing", "commands-edge-cases.json"), "utf8")) as EdgeCases;
const bytesOf = (b64: string): Buffer => Buffer.from(b64, "base64");

function verifier(): CommandVerifier {
  return new CommandVerifier({
    secret: fixture.secret,
    clock: new FakeClock(0, fixture.now_unix_seconds * 1000),
    nonceTtlSeconds: fixture.nonce_ttl_seconds,
    freshnessWindowSeconds: fixture.freshness_window_seconds,
    futureSkewSeconds: fixture.future_skew_seconds,
  });
}

describe("Genuine Python-signed commands are refused when an annotation key is __proto__ or a Struct Value is empty", () => {
  it("names its generator and covers __proto__ keys, empty Values and non-BMP keys", () => {
    expect(fixture.generator).toBe("test/fixtures/signing/make_edge_cases.py");
    expect(fixture.cases.map((c) => c.name)).toEqual(
      expect.arrayContaining(["proto_annotation_key", "empty_struct_value", "proto_struct_key", "non_bmp_keys", "all_edges_together"]),
    );
  });

  it.each(fixture.cases.map((c) => [c.name, c] as const))("%s verifies as recorded", (_name, c) => {
    const verdict = verifier().verify(decodeAdaptationCommand(bytesOf(c.command_b64)));
    expect(verdict.accepted ? "ok" : verdict.reason).toBe(c.expect);
  });

  it("re-encodes each recorded command to Python's bytes (apart from unknown fields)", () => {
    for (const c of fixture.cases.filter((x) => x.expect === "ok" && x.name !== "unknown_field_ignored")) {
      const ours = Buffer.from(canonicalCommandBytes(decodeAdaptationCommand(bytesOf(c.command_b64)), ""));
      expect(ours.toString("base64"), c.name).toBe(c.command_b64);
    }
  });

  it("keeps a __proto__ Struct key as data, not as the payload's prototype", () => {
    const c = fixture.cases.find((x) => x.name === "proto_struct_key");
    const command = decodeAdaptationCommand(bytesOf(c?.command_b64 ?? ""));
    const payload = command.payload?.$case === "rollbackPayload" ? (command.payload.value as Record<string, unknown>) : {};
    expect(Object.keys(payload).sort()).toEqual(["__proto__", "nested", "plain"]);
    expect(Object.getPrototypeOf(payload)).toBe(Object.prototype);
    expect((payload as { isAdmin?: unknown }).isAdmin).toBeUndefined();
    // ts-proto's own decoder loses the key (why the server decodes Struct itself).
    const generated = AdaptationCommand.decode(bytesOf(c?.command_b64 ?? ""));
    expect(Object.keys(generated.payload?.$case === "rollbackPayload" ? (generated.payload.value ?? {}) : {})).not.toContain("__proto__");
  });
});

describe("the recordings over a real socket (ApplyCommand request bytes sent as recorded)", () => {
  let harness: Harness;
  let raw: Client;
  beforeAll(async () => {
    harness = await startHarness({ ESPER_LEYLINE_SECRET: fixture.secret });
    harness.clock.wall = fixture.now_unix_seconds * 1000;
    raw = new Client(harness.server.address, credentials.createInsecure());
  });
  afterAll(async () => {
    raw.close();
    await harness.close();
  });

  /** ApplyCommandRequest{1: command} around the recorded bytes, untouched by any JavaScript encoder. */
  const applyRaw = (command: Buffer): Promise<ServiceError | null> => {
    const length: number[] = [];
    for (let n = command.length; ; n >>>= 7) {
      if (n < 0x80) {
        length.push(n);
        break;
      }
      length.push((n & 0x7f) | 0x80);
    }
    const request = Buffer.concat([Buffer.from([0x0a, ...length]), command]);
    return new Promise((resolve) => {
      raw.makeUnaryRequest(
        "/esper.kasmina.v1.KasminaService/ApplyCommand",
        (b: Buffer) => b,
        (b: Buffer) => b,
        request,
        new Metadata(),
        (error: ServiceError | null) => resolve(error),
      );
    });
  };

  it.each(fixture.cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const error = await applyRaw(bytesOf(c.command_b64));
    if (c.expect === "ok") {
      // Verified: whatever the command then does, it is not refused by verification.
      expect(error === null || error.code !== status.PERMISSION_DENIED, error?.details).toBe(true);
    } else {
      expect(error?.code).toBe(status.PERMISSION_DENIED);
      expect(error?.details).toMatch(new RegExp(`^${c.expect}`));
    }
  });
});
