// Coordinator behaviour that does not depend on the transport: KAS-H1-006 vectors, training run id
// (decision 8), timeouts, restart, bounded idempotency, reader-side rejections, wiring from config.
import { afterEach, describe, expect, it } from "vitest";
import { SpanStatusCode } from "@opentelemetry/api";
import { BusEnvelope, BusMessageType } from "../../src/leyline.js";
import { FakeClock } from "../../src/kasmina/ports.js";
import { PREFETCH_STREAMS, type BusConsumer, type PrefetchBus } from "../../src/prefetch/bus.js";
import { MissingTrainingRunIdError, PREFETCH_LOOP_SPAN, PREFETCH_TIMEOUT_REASON } from "../../src/prefetch/coordinator.js";
import { MemoryBus } from "../../src/prefetch/memory-bus.js";
import { PrefetchResponder, envelope } from "../../src/prefetch/responder.js";
import { createPrefetch } from "../../src/prefetch/setup.js";
import { RedisBus } from "../../src/infra/redis-bus.js";
import { CATALOG, Fixture, readyEnvelope } from "./contract.js";
import { Recorder, waitUntil } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function track(fixture: Fixture): Fixture {
  cleanups.push(() => fixture.coordinator.close(), () => fixture.bus.close());
  return fixture;
}

/** A bus whose consumers wait, without reading anything, until they are closed. */
function idleBus(overrides: Partial<PrefetchBus> = {}): PrefetchBus {
  return {
    publish: async () => "1-0",
    ensureGroup: async () => undefined,
    consumer: (options) => {
      let release: () => void = () => undefined;
      const closed = new Promise<"closed">((resolve) => {
        release = () => resolve("closed");
      });
      return { stream: options.stream, poll: () => closed, close: async () => release() };
    },
    close: async () => undefined,
    ...overrides,
  };
}

/** A bus whose consumers answer every poll with `poll` (a broken or vanished transport). */
function stubBus(poll: BusConsumer["poll"]): PrefetchBus {
  return {
    publish: async () => "1-0",
    ensureGroup: async () => undefined,
    consumer: (options) => ({ stream: options.stream, poll, close: async () => undefined }),
    close: async () => undefined,
  };
}

describe("KAS-H1-006 pollTaskIssue vectors", () => {
  it("start, close, poll ⇒ undefined", async () => {
    const fixture = track(new Fixture(new MemoryBus()));
    fixture.coordinator.start();
    expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
    await fixture.coordinator.close();
    expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
    expect(fixture.tracing.errorSpans()).toHaveLength(0);
    expect(fixture.issues.calls).toHaveLength(0);
  });

  it("a consumer that throws ⇒ poll returns that error, with an ERROR span recording the exception", async () => {
    const boom = new Error("consumer exploded");
    const fixture = track(new Fixture(stubBus(() => Promise.reject(boom))));
    fixture.coordinator.start();
    expect(await fixture.issues.waitFor(1)).toBe(boom);
    expect(fixture.coordinator.pollTaskIssue()).toBe(boom);
    const span = fixture.tracing.spans(PREFETCH_LOOP_SPAN)[0];
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: "consumer exploded" });
    expect(span?.events.find((event) => event.name === "exception")?.attributes?.["exception.message"]).toBe("consumer exploded");
    // Every failed round is a span: the loop keeps retrying with backoff rather than dying.
    await fixture.issues.waitFor(3);
    expect(fixture.tracing.spans(PREFETCH_LOOP_SPAN).length).toBeGreaterThanOrEqual(3);
    // A deliberate close silences even a failure that was current: no page for a clean shutdown.
    const closing = fixture.coordinator.close();
    expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
    await closing;
    expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
  });

  it("a loop that ends while running ⇒ 'exited unexpectedly'; the same end during close() is not an issue", async () => {
    const fixture = track(new Fixture(stubBus(async () => "closed")));
    fixture.coordinator.start();
    const issue = await fixture.issues.waitFor(1);
    expect(issue.message).toMatch(/^Kasmina prefetch (ready|error) task exited unexpectedly$/);
    expect(fixture.coordinator.pollTaskIssue()?.message).toMatch(/exited unexpectedly/);
    const closing = fixture.coordinator.close();
    expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
    await closing;
    expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
  });

  it("recovery is reported only when every loop is healthy again", async () => {
    let failReady = true;
    let failError = true;
    const bus: PrefetchBus = {
      ...stubBus(async () => 0),
      consumer: (options) => ({
        stream: options.stream,
        poll: async () => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          if (options.stream === PREFETCH_STREAMS.ready ? failReady : failError) throw new Error(`${options.stream} down`);
          return 0;
        },
        close: async () => undefined,
      }),
    };
    const fixture = track(new Fixture(bus));
    fixture.coordinator.start();
    await waitUntil(() => fixture.issues.calls.some((e) => e.message.includes("ready")) && fixture.issues.calls.some((e) => e.message.includes("errors")), "both loops fail");
    failReady = false;
    await waitUntil(() => fixture.coordinator.pollTaskIssue()?.message === `${PREFETCH_STREAMS.errors} down`, "only the error loop still fails");
    expect(fixture.recovered.calls).toHaveLength(0);
    failError = false;
    await fixture.recovered.waitFor(1);
    expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
  });
});

describe("requestKernel", () => {
  it("without a training run id fails loudly (decision 8), naming seed and blueprint", () => {
    const fixture = track(new Fixture(new MemoryBus(), { trainingRunId: undefined }));
    fixture.coordinator.start();
    expect(() => fixture.coordinator.requestKernel("seed-7", "BP001")).toThrow(MissingTrainingRunIdError);
    expect(() => fixture.coordinator.requestKernel("seed-7", "BP001", "   ")).toThrow(
      "prefetch request missing training_run_id (seed_id=seed-7, blueprint_id=BP001)",
    );
    expect(fixture.coordinator.pendingCount).toBe(0);
    expect(fixture.tracing.spans()).toHaveLength(0);
  });

  it("refuses to request while the coordinator is not running", () => {
    const fixture = track(new Fixture(new MemoryBus()));
    expect(() => fixture.coordinator.requestKernel("seed-1", "BP001")).toThrow("prefetch coordinator is not running");
  });

  it("times out with 'prefetch timed out' on the injected clock; a late reply is ignored", async () => {
    const clock = new FakeClock();
    const bus = new MemoryBus();
    const fixture = track(new Fixture(bus, { clock, requestTimeoutMs: 60_000, timeoutSweepMs: 0 }));
    fixture.coordinator.start();
    const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
    clock.advance(59.9);
    expect(await fixture.coordinator.expireOverdue()).toBe(0);
    clock.advance(0.2);
    expect(await fixture.coordinator.expireOverdue()).toBe(1);
    const call = await fixture.errors.waitFor(1);
    expect(call.reply).toEqual({ requestId, blueprintId: "BP001", reason: PREFETCH_TIMEOUT_REASON });
    expect(fixture.requestSpan(requestId)?.status).toEqual({ code: SpanStatusCode.ERROR, message: PREFETCH_TIMEOUT_REASON });
    await bus.publish(PREFETCH_STREAMS.ready, readyEnvelope(requestId, "BP001"));
    expect(await fixture.ignored.waitFor(1)).toMatchObject({ requestId, reason: "duplicate" });
    expect(fixture.ready.calls).toHaveLength(0);
  });

  it("times out by its own timer when nobody answers", async () => {
    const fixture = track(new Fixture(new MemoryBus(), { requestTimeoutMs: 50 }));
    fixture.coordinator.start();
    const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
    expect((await fixture.errors.waitFor(1, 3000)).reply).toMatchObject({ requestId, reason: PREFETCH_TIMEOUT_REASON });
  });

  it("a handler that throws on a timeout is recorded on the request span, and the request still settles", async () => {
    const clock = new FakeClock();
    const failure = new Error("manager failed on timeout");
    const fixture = track(
      new Fixture(new MemoryBus(), {
        clock,
        timeoutSweepMs: 0,
        handlers: {
          onReady: () => undefined,
          onError: () => {
            throw failure;
          },
        },
      }),
    );
    fixture.coordinator.start();
    const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
    clock.advance(61);
    await fixture.coordinator.expireOverdue();
    const span = fixture.requestSpan(requestId);
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: PREFETCH_TIMEOUT_REASON });
    expect(span?.events.some((event) => event.name === "exception")).toBe(true);
    expect(fixture.coordinator.pendingCount).toBe(0);
  });

  it("a publish that fails settles the request through onError", async () => {
    const fixture = track(new Fixture(idleBus({ publish: () => Promise.reject(new Error("bus unavailable")) })));
    fixture.coordinator.start();
    const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
    const call = await fixture.errors.waitFor(1);
    expect(call.reply).toEqual({ requestId, blueprintId: "BP001", reason: "prefetch publish failed: bus unavailable" });
    expect(fixture.requestSpan(requestId)?.status).toEqual({ code: SpanStatusCode.ERROR, message: "prefetch publish failed: bus unavailable" });
    expect(fixture.coordinator.pendingCount).toBe(0);
  });
});

describe("coordinator lifecycle", () => {
  it("close() abandons pending requests (spans end ERROR, no handler call); start() after close() works again", async () => {
    const bus = new MemoryBus();
    const responder = new PrefetchResponder({ bus, catalog: CATALOG });
    cleanups.push(() => responder.close());
    const fixture = track(new Fixture(bus));
    fixture.coordinator.start();
    const abandoned = fixture.coordinator.requestKernel("seed-1", "BP001");
    await fixture.coordinator.close();
    expect(fixture.requestSpan(abandoned)?.status).toEqual({ code: SpanStatusCode.ERROR, message: "prefetch coordinator closed" });
    expect(fixture.errors.calls).toHaveLength(0);
    await responder.start();
    fixture.coordinator.start();
    const requestId = fixture.coordinator.requestKernel("seed-2", "BP001");
    expect((await fixture.ready.waitFor(1)).reply.requestId).toBe(requestId);
  });

  it("remembers settled ids in a bounded set: beyond the bound an old reply counts as unknown", async () => {
    const bus = new MemoryBus();
    const fixture = track(new Fixture(bus, { rememberedReplies: 2 }));
    fixture.coordinator.start();
    const ids = ["a", "b", "c"].map((seed) => fixture.coordinator.requestKernel(seed, "BP001"));
    await waitUntil(() => bus.streams.range(PREFETCH_STREAMS.requests).length === 3, "requests are published");
    for (const id of ids) await bus.publish(PREFETCH_STREAMS.ready, readyEnvelope(id, "BP001"));
    await fixture.ready.waitFor(3);
    await bus.publish(PREFETCH_STREAMS.ready, readyEnvelope(ids[2] ?? "", "BP001"));
    await bus.publish(PREFETCH_STREAMS.ready, readyEnvelope(ids[0] ?? "", "BP001"));
    await fixture.ignored.waitFor(2);
    expect(fixture.ignored.calls.map((call) => call.reason)).toEqual(["duplicate", "unknown_request"]);
    expect(fixture.ready.calls).toHaveLength(3);
  });

  it("rejects entries it cannot read: wrong message type, undecodable payload, missing payload field", async () => {
    const bus = new MemoryBus();
    const fixture = track(new Fixture(bus));
    fixture.coordinator.start();
    fixture.coordinator.requestKernel("seed-1", "BP001");
    await waitUntil(() => bus.streams.range(PREFETCH_STREAMS.requests).length === 1, "the request is published");
    await bus.publish(PREFETCH_STREAMS.ready, envelope(BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_ERROR, new Uint8Array()));
    await bus.publish(PREFETCH_STREAMS.ready, envelope(BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_READY, Buffer.from([0x0a, 0xff])));
    bus.streams.append(PREFETCH_STREAMS.ready, [["data", Buffer.from("x")]]);
    await fixture.rejected.waitFor(3);
    expect(fixture.rejected.calls.map((call) => call.reason)).toEqual(["unexpected_message_type", "malformed_message", "missing_payload"]);
    expect(fixture.ready.calls).toHaveLength(0);
    expect(bus.streams.pendingCount(PREFETCH_STREAMS.ready, "kasmina")).toBe(0);
  });

  it("without a secret, entries are neither signed nor checked", async () => {
    const bus = new MemoryBus();
    const fixture = track(new Fixture(bus));
    fixture.coordinator.start();
    const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
    await waitUntil(() => bus.streams.range(PREFETCH_STREAMS.requests).length === 1, "the request is published");
    expect(bus.streams.range(PREFETCH_STREAMS.requests)[0]?.fields.has("signature")).toBe(false);
    bus.streams.append(PREFETCH_STREAMS.ready, [["payload", Buffer.from(BusEnvelope.encode(readyEnvelope(requestId, "BP001")).finish())]]);
    await fixture.ready.waitFor(1);
  });
});

describe("createPrefetch (wiring from configuration)", () => {
  it("KASMINA_BUS=none ⇒ no coordinator", () => {
    expect(createPrefetch({ bus: "none", redisUrl: "redis://127.0.0.1:1", secret: undefined, trainingRunId: "run" }, { catalog: CATALOG, handlers: { onReady: () => undefined, onError: () => undefined } })).toBeUndefined();
  });

  it("KASMINA_BUS=memory ⇒ in-process bus and built-in responder answer from the catalog", async () => {
    const ready = new Recorder<string>();
    const errors = new Recorder<string>();
    const stack = createPrefetch(
      { bus: "memory", redisUrl: "redis://127.0.0.1:1", secret: "s3cret", trainingRunId: "run-9" },
      { catalog: CATALOG, handlers: { onReady: (reply) => ready.fn(reply.artifactRef), onError: (error) => errors.fn(error.reason) } },
    );
    if (stack === undefined) throw new Error("expected a prefetch stack");
    cleanups.push(() => stack.close());
    expect(stack.bus).toBeInstanceOf(MemoryBus);
    await stack.start();
    stack.coordinator.requestKernel("seed-1", "BP001");
    stack.coordinator.requestKernel("seed-2", "nope");
    expect(await ready.waitFor(1)).toBe("kernels/BP001.bin");
    expect(await errors.waitFor(1)).toBe("unknown blueprint nope");
    await stack.close();
    await stack.close();
    expect(stack.coordinator.running).toBe(false);
  });

  it("KASMINA_BUS=redis ⇒ Redis Streams bus at KASMINA_REDIS_URL, no built-in responder", async () => {
    const stack = createPrefetch(
      { bus: "redis", redisUrl: "redis://127.0.0.1:1", secret: undefined, trainingRunId: "run" },
      { catalog: CATALOG, handlers: { onReady: () => undefined, onError: () => undefined }, redisBus: (options) => new RedisBus(options) },
    );
    if (stack === undefined) throw new Error("expected a prefetch stack");
    expect(stack.bus).toBeInstanceOf(RedisBus);
    expect(stack.responder).toBeUndefined();
    await stack.close();
  });
});
