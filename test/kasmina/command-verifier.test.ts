import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AdaptationCommand, CommandType, SeedOperation } from "../../src/leyline.js";
import { canonicalCommandBytes } from "../../src/kasmina/canonical-command.js";
import { CommandVerifier, NonceLedger, signCommand } from "../../src/kasmina/command-verifier.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { fixturesDir } from "../support/fixtures.js";

interface SigningFixture {
  secret: string;
  now_unix_seconds: number;
  freshness_window_seconds: number;
  future_skew_seconds: number;
  nonce_ttl_seconds: number;
  cases: { name: string; command_b64: string; expect: string }[];
  sequences: { name: string; sequence_b64: string[]; expect_sequence: string[] }[];
}

const fixture = JSON.parse(readFileSync(join(fixturesDir(), "signing", "commands-seed7.json"), "utf8")) as SigningFixture;

function verifierFor(clock = new FakeClock(0, fixture.now_unix_seconds * 1000)): CommandVerifier {
  return new CommandVerifier({
    secret: fixture.secret,
    clock,
    nonceTtlSeconds: fixture.nonce_ttl_seconds,
    freshnessWindowSeconds: fixture.freshness_window_seconds,
    futureSkewSeconds: fixture.future_skew_seconds,
  });
}

const decode = (b64: string): AdaptationCommand => AdaptationCommand.decode(Buffer.from(b64, "base64"));
const outcome = (v: ReturnType<CommandVerifier["verify"]>): string => (v.accepted ? "ok" : v.reason);

describe("CommandVerifier against commands signed by a Python sender", () => {
  it.each(fixture.cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    expect(outcome(verifierFor().verify(decode(c.command_b64)))).toBe(c.expect);
  });

  it.each(fixture.sequences.map((s) => [s.name, s] as const))("sequence %s", (_name, s) => {
    const verifier = verifierFor();
    expect(s.sequence_b64.map((b64) => outcome(verifier.verify(decode(b64))))).toEqual(s.expect_sequence);
  });

  it("re-encodes sorted wire bytes unchanged apart from the signature entry", () => {
    const sorted = fixture.cases.find((c) => c.name === "valid_sorted_0");
    if (sorted === undefined) throw new Error("fixture case missing");
    const command = decode(sorted.command_b64);
    const ours = Buffer.from(canonicalCommandBytes(command));
    const withSignature = Buffer.from(canonicalCommandBytes(command, ""));
    expect(withSignature.equals(Buffer.from(sorted.command_b64, "base64"))).toBe(true);
    expect(ours.length).toBeLessThan(withSignature.length);
  });
});

function signed(overrides: Partial<AdaptationCommand>, secret = "s", clock = new FakeClock(0, 1_790_000_000_000)): AdaptationCommand {
  const command = AdaptationCommand.fromPartial({
    commandId: "cmd-1",
    commandType: CommandType.COMMAND_SEED,
    targetSeedId: "seed-1",
    issuedAt: { seconds: BigInt(Math.floor(clock.wallMs() / 1000)), nanos: 0 },
    payload: { $case: "seedOperation", value: { operation: SeedOperation.SEED_OP_GERMINATE, blueprintId: "BP001", parameters: new Map() } },
    annotations: new Map(Object.entries({})),
    ...overrides,
  });
  command.annotations.set("signature", signCommand(command, secret));
  return command;
}

describe("CommandVerifier ordering (DESIGN decision 18)", () => {
  it("checks freshness before consuming the nonce, so a stale command does not burn its id", () => {
    const clock = new FakeClock(0, 1_790_000_000_000);
    const verifier = new CommandVerifier({ secret: "s", clock });
    const stale = signed({ issuedAt: { seconds: 1_790_000_000n - 61n, nanos: 0 } }, "s", clock);
    expect(verifier.verify(stale)).toEqual({ accepted: false, reason: "stale_command" });
    expect(verifier.nonces.size).toBe(0);
    expect(verifier.verify(signed({}, "s", clock))).toEqual({ accepted: true });
    expect(verifier.verify(signed({}, "s", clock))).toEqual({ accepted: false, reason: "nonce_replayed" });
  });

  it("accepts a replayed id again once its nonce TTL has passed", () => {
    const clock = new FakeClock(0, 1_790_000_000_000);
    const verifier = new CommandVerifier({ secret: "s", clock, nonceTtlSeconds: 300 });
    expect(verifier.verify(signed({}, "s", clock)).accepted).toBe(true);
    clock.mono += 300; // expiry <= now purges the entry
    expect(verifier.verify(signed({}, "s", clock)).accepted).toBe(true);
  });

  it("fails closed when the nonce ledger is full", () => {
    const clock = new FakeClock(0, 1_790_000_000_000);
    const verifier = new CommandVerifier({ secret: "s", clock, maxNonces: 2 });
    expect(verifier.verify(signed({ commandId: "a" }, "s", clock)).accepted).toBe(true);
    expect(verifier.verify(signed({ commandId: "b" }, "s", clock)).accepted).toBe(true);
    expect(verifier.verify(signed({ commandId: "c" }, "s", clock))).toEqual({ accepted: false, reason: "nonce_ledger_full" });
  });

  it("signs maps in UTF-8 byte order, not UTF-16 order", () => {
    // U+FF5A sorts after U+1F680 in UTF-16 code units but before it in UTF-8 bytes.
    const command = signed({ annotations: new Map([["\u{1F680}", "rocket"], ["\uFF5A", "z"]]) });
    const bytes = Buffer.from(canonicalCommandBytes(command));
    expect(bytes.indexOf(Buffer.from("\uFF5A"))).toBeLessThan(bytes.indexOf(Buffer.from("\u{1F680}")));
  });
});

describe("NonceLedger", () => {
  it("rejects a live nonce and purges expired ones in order", () => {
    const clock = new FakeClock();
    const ledger = new NonceLedger(clock, 10, 100);
    expect(ledger.register("x")).toBe("ok");
    clock.mono = 5;
    expect(ledger.register("y")).toBe("ok");
    expect(ledger.register("x")).toBe("nonce_replayed");
    clock.mono = 10;
    expect(ledger.register("z")).toBe("ok");
    expect(ledger.size).toBe(2); // x expired at 10 and was purged
  });
});
