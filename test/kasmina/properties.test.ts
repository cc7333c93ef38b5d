// fast-check properties of the parts a hostile or unlucky client leans on: the canonical command
// encoding (what is signed), the TTL cache and the circuit breaker (each against a small reference
// model of the spec), and the seed queue with caller-pushed markers (extending the push-sequence
// property in seed-queue.test.ts).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalCommandBytes } from "../../src/kasmina/canonical-command.js";
import { BreakerState, CircuitBreaker, type BreakerStateValue } from "../../src/kasmina/circuit-breaker.js";
import { CommandVerifier, signCommand } from "../../src/kasmina/command-verifier.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { SeedQueue } from "../../src/kasmina/seed-queue.js";
import { TtlCache } from "../../src/kasmina/ttl-cache.js";
import { AdaptationCommand, CircuitBreakerState, CommandType, SeedOperation } from "../../src/leyline.js";

const SECRET = "property-secret";

// Any Unicode text, astral planes included (no lone surrogates: they are not encodable as UTF-8).
const text = fc.string({ unit: "binary", maxLength: 12 });
const entries = <V>(value: fc.Arbitrary<V>): fc.Arbitrary<[string, V][]> =>
  fc.uniqueArray(fc.tuple(text, value), { selector: ([k]) => k, maxLength: 8 });
// Finding while writing this: ts-proto's encoder omits a map value of -0 (it tests `value !== 0`),
// so a TypeScript sender that signs -0 puts +0 on the wire and the signature no longer matches;
// a Python sender keeps -0 and verifies. The server side is right; -0 is left out of the
// round-trip properties and covered by the regression test below.
const float32 = fc.float({ noNaN: true }).map((v) => (Object.is(v, -0) ? 0 : v));
// Struct keys become object keys; "__proto__" would be the prototype, not data, in a plain object.
const structValue = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), text, fc.boolean(), fc.constant(null));
const struct = fc.dictionary(text.filter((k) => k !== "__proto__"), structValue, { maxKeys: 6 });

interface CommandShape {
  commandId: string;
  targetSeedId: string;
  issuedBy: string;
  seconds: number;
  annotations: [string, string][];
  payload: { kind: "seed"; params: [string, number][]; blueprint: string } | { kind: "optimizer"; hyper: [string, number][] } | { kind: "rollback"; value: Record<string, unknown> } | { kind: "breaker"; rationale: string };
}

const commandShape: fc.Arbitrary<CommandShape> = fc.record({
  commandId: text,
  targetSeedId: text,
  issuedBy: text,
  seconds: fc.integer({ min: 1_000_000_000, max: 2 ** 40 }),
  annotations: entries(text).map((es) => es.filter(([k]) => k !== "signature")),
  payload: fc.oneof(
    fc.record({ kind: fc.constant("seed" as const), params: entries(float32), blueprint: text }),
    fc.record({ kind: fc.constant("optimizer" as const), hyper: entries(float32) }),
    fc.record({ kind: fc.constant("rollback" as const), value: struct }),
    fc.record({ kind: fc.constant("breaker" as const), rationale: text }),
  ),
});

/** The command, with every map filled in the order given (so a permutation is a different insertion order). */
function build(shape: CommandShape, order: (n: number) => number[]): AdaptationCommand {
  const permute = <T>(xs: T[]): T[] => order(xs.length).map((i) => xs[i] as T);
  const p = shape.payload;
  const payload: AdaptationCommand["payload"] =
    p.kind === "seed"
      ? { $case: "seedOperation", value: { operation: SeedOperation.SEED_OP_GERMINATE, blueprintId: p.blueprint, parameters: new Map(permute(p.params)) } }
      : p.kind === "optimizer"
        ? { $case: "optimizerAdjustment", value: { optimizerId: "adam", hyperparameters: new Map(permute(p.hyper)) } }
        : p.kind === "rollback"
          ? { $case: "rollbackPayload", value: Object.fromEntries(permute(Object.entries(p.value))) }
          : { $case: "circuitBreaker", value: { desiredState: CircuitBreakerState.CIRCUIT_STATE_OPEN, rationale: p.rationale } };
  return AdaptationCommand.fromPartial({
    version: 1,
    commandId: shape.commandId,
    commandType: { seed: CommandType.COMMAND_SEED, optimizer: CommandType.COMMAND_OPTIMIZER, rollback: CommandType.COMMAND_ROLLBACK, breaker: CommandType.COMMAND_CIRCUIT_BREAKER }[p.kind],
    targetSeedId: shape.targetSeedId,
    issuedAt: { seconds: BigInt(shape.seconds), nanos: 0 },
    issuedBy: shape.issuedBy,
    payload,
    annotations: new Map(permute(shape.annotations)),
  });
}

const identityOrder = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const reversedOrder = (n: number): number[] => identityOrder(n).reverse();
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

describe("property: canonical command encoding (what is signed)", () => {
  it("decode → re-encode gives the same canonical bytes and signature, whatever the map order", () => {
    fc.assert(
      fc.property(commandShape, fc.infiniteStream(fc.nat()), (shape, randoms) => {
        const original = build(shape, identityOrder);
        const signature = signCommand(original, SECRET);
        // The same command with every map in another insertion order, sent over the wire and decoded.
        const shuffled = (n: number): number[] => identityOrder(n).sort(() => (randoms.next().value as number) % 3 - 1);
        for (const order of [reversedOrder, shuffled]) {
          const other = build(shape, order);
          other.annotations.set("signature", signature);
          const decoded = AdaptationCommand.decode(AdaptationCommand.encode(other).finish());
          expect(hex(canonicalCommandBytes(decoded))).toBe(hex(canonicalCommandBytes(original)));
          expect(signCommand(decoded, SECRET)).toBe(signature);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("the canonical bytes are a valid encoding that decodes and re-encodes to themselves", () => {
    fc.assert(
      fc.property(commandShape, (shape) => {
        const bytes = canonicalCommandBytes(build(shape, identityOrder));
        expect(hex(canonicalCommandBytes(AdaptationCommand.decode(bytes)))).toBe(hex(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it("the verifier accepts a decoded, re-ordered command signed over the original, and refuses it once any annotation changes", () => {
    fc.assert(
      fc.property(commandShape, text, (anyShape, extra) => {
        // The verifier needs a command id (an empty one is refused before the signature is checked).
        const shape = { ...anyShape, commandId: `c-${anyShape.commandId}` };
        const clock = new FakeClock(0, shape.seconds * 1000);
        const verifier = new CommandVerifier({ secret: SECRET, clock, nonceTtlSeconds: 300, freshnessWindowSeconds: 60 });
        const signature = signCommand(build(shape, identityOrder), SECRET);
        const sent = build(shape, reversedOrder);
        sent.annotations.set("signature", signature);
        const wire = AdaptationCommand.encode(sent).finish();
        const tampered = AdaptationCommand.decode(wire);
        tampered.annotations.set(`${extra}\u{1F331}`, "tampered");
        tampered.commandId = `${tampered.commandId}-t`;
        expect(verifier.verify(tampered)).toEqual({ accepted: false, reason: "invalid_signature" });
        expect(verifier.verify(AdaptationCommand.decode(wire))).toEqual({ accepted: true });
      }),
      { numRuns: 200 },
    );
  });
});

describe("regression: a -0 map value signed by a sender that keeps it on the wire (ts-proto's encoder does not)", () => {
  it("verifies when the wire bytes carry -0, as Python's SerializeToString does", () => {
    const clock = new FakeClock(0, 1_790_000_000_000);
    const cmd = AdaptationCommand.fromPartial({
      version: 1,
      commandId: "minus-zero",
      commandType: CommandType.COMMAND_OPTIMIZER,
      issuedAt: { seconds: 1_790_000_000n, nanos: 0 },
      payload: { $case: "optimizerAdjustment", value: { optimizerId: "adam", hyperparameters: new Map([["lr", -0]]) } },
    });
    const signature = signCommand(cmd, SECRET);
    // The canonical bytes keep -0 (its sign bit is not the default), then the signature entry.
    const canonical = canonicalCommandBytes(cmd);
    const withSignature = AdaptationCommand.encode(AdaptationCommand.fromPartial({ annotations: new Map([["signature", signature]]) })).finish();
    const decoded = AdaptationCommand.decode(Buffer.concat([canonical, withSignature]));
    const hyper = decoded.payload?.$case === "optimizerAdjustment" ? decoded.payload.value.hyperparameters.get("lr") : undefined;
    expect(Object.is(hyper, -0)).toBe(true);
    expect(new CommandVerifier({ secret: SECRET, clock, nonceTtlSeconds: 300, freshnessWindowSeconds: 60 }).verify(decoded)).toEqual({ accepted: true });
  });
});

describe("property: TTL cache against a reference model", () => {
  type Op =
    | { op: "set" | "pin" | "get" | "delete"; key: string }
    | { op: "advance"; seconds: number }
    | { op: "cleanup" }
    | { op: "clear"; keepPinned: boolean };
  const key = fc.constantFrom("a", "b", "c", "d");
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ op: fc.constantFrom("set" as const, "pin" as const, "get" as const, "delete" as const), key }),
    fc.record({ op: fc.constant("advance" as const), seconds: fc.constantFrom(0.5, 1, 5, 9.99, 10, 10.01, 30) }),
    fc.record({ op: fc.constant("cleanup" as const) }),
    fc.record({ op: fc.constant("clear" as const), keepPinned: fc.boolean() }),
  );

  it("gets, expiries, cleanups, clears and statistics match the model", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const clock = new FakeClock();
        const evicted: number[] = [];
        const cache = new TtlCache<number>({ clock, ttlSeconds: 10, onEviction: (n) => evicted.push(n) });
        const model = new Map<string, { value: number; expiry: number }>();
        let hits = 0;
        let misses = 0;
        let evictions = 0;
        let version = 0;
        for (const o of ops) {
          const now = clock.monotonic();
          switch (o.op) {
            case "set":
            case "pin":
              version += 1;
              if (o.op === "set") cache.set(o.key, version);
              else cache.setPinned(o.key, version);
              model.set(o.key, { value: version, expiry: o.op === "pin" ? Infinity : now + 10 });
              break;
            case "get": {
              const slot = model.get(o.key);
              const live = slot !== undefined && !(slot.expiry < now);
              if (slot !== undefined && !live) {
                model.delete(o.key);
                evictions += 1;
              }
              if (live) hits += 1;
              else misses += 1;
              expect(cache.get(o.key)).toBe(live ? slot.value : undefined);
              break;
            }
            case "delete":
              expect(cache.delete(o.key)).toBe(model.delete(o.key));
              break;
            case "advance":
              clock.advance(o.seconds);
              break;
            case "cleanup": {
              const expired = [...model].filter(([, s]) => s.expiry < now).map(([k]) => k);
              for (const k of expired) model.delete(k);
              evictions += expired.length;
              expect(cache.cleanup()).toBe(expired.length);
              break;
            }
            case "clear": {
              const removed = [...model].filter(([, s]) => !(o.keepPinned && s.expiry === Infinity)).map(([k]) => k);
              for (const k of removed) model.delete(k);
              hits = misses = evictions = 0;
              expect(cache.clear({ keepPinned: o.keepPinned })).toBe(removed.length);
              break;
            }
          }
          expect(cache.size).toBe(model.size);
          const stats = cache.stats();
          expect(stats.evictions).toBe(evictions);
          expect(stats.hitRate).toBe(hits + misses === 0 ? 0 : hits / (hits + misses));
          // peek never changes anything and agrees with liveness now.
          for (const k of ["a", "b", "c", "d"]) {
            const s = model.get(k);
            expect(cache.peek(k)).toBe(s !== undefined && !(s.expiry < clock.monotonic()) ? s.value : undefined);
          }
        }
        expect(cache.size).toBe(model.size);
      }),
      { numRuns: 400 },
    );
  });
});

describe("property: circuit breaker against a reference model (spec §7, decision 21)", () => {
  type Op = { op: "allow" | "failure" | "success" } | { op: "advance"; ms: number } | { op: "force"; state: BreakerStateValue };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constantFrom("allow" as const, "failure" as const, "success" as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.constantFrom(1, 500, 999, 1000, 1001, 5000) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("force" as const), state: fc.constantFrom<BreakerStateValue>(BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN) }) },
  );

  it("opens after the threshold of failures, denies until the cool-down, half-opens, and closes after the successes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.array(op, { maxLength: 80 }), (failureThreshold, successThreshold, ops) => {
        const clock = new FakeClock();
        const breaker = new CircuitBreaker({ clock, failureThreshold, successThreshold, timeoutMs: 1000 });
        // The model: state, consecutive failures, half-open successes, open deadline.
        let state: BreakerStateValue = BreakerState.CLOSED;
        let failures = 0;
        let successes = 0;
        let openUntil: number | null = null;
        for (const o of ops) {
          const now = clock.monotonic();
          switch (o.op) {
            case "allow": {
              let allowed = true;
              if (state === BreakerState.OPEN) {
                if (openUntil !== null && now < openUntil) allowed = false;
                else {
                  state = BreakerState.HALF_OPEN;
                  failures = successes = 0;
                  openUntil = null;
                }
              }
              expect(breaker.allow().allowed).toBe(allowed);
              break;
            }
            case "failure":
              failures += 1;
              successes = 0;
              if (state === BreakerState.OPEN || state === BreakerState.HALF_OPEN || failures >= failureThreshold) {
                state = BreakerState.OPEN;
                openUntil = now + 1;
              }
              breaker.recordFailure("test");
              break;
            case "success":
              if (state === BreakerState.CLOSED) failures = 0;
              else if (state === BreakerState.HALF_OPEN) {
                successes += 1;
                if (successes >= successThreshold) {
                  state = BreakerState.CLOSED;
                  failures = successes = 0;
                  openUntil = null;
                }
              }
              breaker.recordSuccess();
              break;
            case "advance":
              clock.advance(o.ms / 1000);
              break;
            case "force":
              state = o.state;
              failures = o.state === BreakerState.OPEN ? failureThreshold : 0;
              successes = 0;
              openUntil = o.state === BreakerState.OPEN ? now + 1 : null;
              breaker.forceState(o.state);
              break;
          }
          expect(breaker.snapshot()).toEqual({ state, failureCount: failures, successCount: successes, openUntil });
          // Invariants: a deadline exists exactly while OPEN; CLOSED never holds a full count of failures.
          expect(breaker.snapshot().openUntil !== null).toBe(state === BreakerState.OPEN);
          if (state === BreakerState.CLOSED) expect(failures).toBeLessThan(failureThreshold);
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe("property: seed queue with caller-pushed markers (a drained batch put back)", () => {
  type Ev = { kind: "event"; id: number } | { kind: "marker"; dropped: number };
  const action = fc.oneof(
    { weight: 5, arbitrary: fc.integer({ min: 0, max: 100 }).map((n) => ({ push: n })) },
    { weight: 1, arbitrary: fc.constant({ drain: true as const }) },
    { weight: 1, arbitrary: fc.constant({ putBack: true as const }) },
  );

  it("stays bounded, keeps one head marker, and conserves every real event: queued, drained or counted dropped", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 40 }), fc.array(action, { maxLength: 40 }), (capacity, actions) => {
        let reported = 0;
        const q = new SeedQueue<Ev>({
          capacity,
          makeMarker: (dropped) => ({ kind: "marker", dropped }),
          markerCount: (e) => (e.kind === "marker" ? e.dropped : undefined),
          onDropped: (n) => (reported += n),
        });
        let pushed = 0;
        let delivered = 0;
        let lastBatch: Ev[] = [];
        for (const a of actions) {
          if ("push" in a) {
            q.pushAll(Array.from({ length: a.push }, () => ({ kind: "event" as const, id: pushed++ })));
          } else if ("drain" in a) {
            lastBatch = q.drain();
            delivered += lastBatch.filter((e) => e.kind === "event").length;
          } else {
            // A failed flush puts its batch back: those events are no longer delivered.
            delivered -= lastBatch.filter((e) => e.kind === "event").length;
            q.pushAll(lastBatch);
            lastBatch = [];
          }
          const now = q.toArray();
          expect(now.length).toBeLessThanOrEqual(capacity);
          expect(now.slice(1).every((e) => e.kind === "event")).toBe(true);
          const ids = now.filter((e): e is Extract<Ev, { kind: "event" }> => e.kind === "event").map((e) => e.id);
          expect(new Set(ids).size).toBe(ids.length); // nothing duplicated
          const queued = ids.length;
          const marker = now[0]?.kind === "marker" ? now[0].dropped : 0;
          expect(marker).toBe(q.dropped);
          expect(queued + delivered + reported).toBe(pushed);
        }
      }),
      { numRuns: 400 },
    );
  });
});
