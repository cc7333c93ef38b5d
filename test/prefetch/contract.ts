// Behaviour every prefetch bus must show, run against the in-process bus and against a real Redis.
// Each harness supplies buses over one shared store plus raw access to the streams (what another
// service, or a crashed consumer, would do on the wire).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SpanStatusCode } from "@opentelemetry/api";
import { BusEnvelope, BusMessageType, KernelArtifactError, KernelArtifactReady, KernelPrefetchRequest, type Timestamp } from "../../src/leyline.js";
import { PREFETCH_STREAMS, type BusConsumer, type ConsumerOptions, type PrefetchBus, type RejectedMessage, type StreamEntry } from "../../src/prefetch/bus.js";
import {
  PREFETCH_LOOP_SPAN,
  PREFETCH_REQUEST_SPAN,
  PrefetchCoordinator,
  type IgnoredReplyReason,
  type PrefetchCoordinatorOptions,
  type PrefetchRequestInfo,
} from "../../src/prefetch/coordinator.js";
import { PrefetchResponder, envelope, staticKernelCatalog } from "../../src/prefetch/responder.js";
import { Recorder, hmacBase64, recordedTracing, waitUntil, withTimeout, type RecordedTracing } from "./helpers.js";

export interface BusHarness {
  secret: string;
  /** A new bus over the shared store; Kasmina and the stand-in Oona each get their own. */
  makeBus(): PrefetchBus;
  appendRaw(stream: string, fields: Array<[string, Buffer]>): Promise<void>;
  entries(stream: string): Promise<StreamEntry[]>;
  /** Entries delivered to the group and not acknowledged. */
  pending(stream: string, group: string): Promise<number>;
  /** Reads new entries as `consumer` and never acknowledges them: a consumer that then crashes. */
  readWithoutAck(stream: string, group: string, consumer: string): Promise<string[]>;
  /** Readers blocked in a read of `stream` right now. */
  blockedReaders(stream: string): Promise<number>;
  /** Empties the store between tests. */
  reset(): Promise<void>;
}

const GROUP = "kasmina";
export const CATALOG = staticKernelCatalog({ BP001: { artifactRef: "kernels/BP001.bin", checksum: "sha256:bp001" } });

export interface ReplyCall {
  reply: KernelArtifactReady | KernelArtifactError;
  request: PrefetchRequestInfo;
}

/** One coordinator under test with recorders on every callback. */
export class Fixture {
  readonly tracing: RecordedTracing = recordedTracing();
  readonly ready = new Recorder<ReplyCall>();
  readonly errors = new Recorder<ReplyCall>();
  readonly rejected = new Recorder<RejectedMessage>();
  readonly ignored = new Recorder<{ stream: string; requestId: string; reason: IgnoredReplyReason }>();
  readonly issues = new Recorder<Error>();
  readonly recovered = new Recorder<undefined>();
  readonly coordinator: PrefetchCoordinator;
  /** Replaced by tests that need a handler to throw. */
  onReady: (call: ReplyCall) => void = () => undefined;

  constructor(
    readonly bus: PrefetchBus,
    overrides: Partial<PrefetchCoordinatorOptions> = {},
  ) {
    this.coordinator = new PrefetchCoordinator({
      bus,
      trainingRunId: "run-1",
      tracing: this.tracing.tracing,
      backoff: { initialMs: 20, maxMs: 200 },
      handlers: {
        onReady: (reply, request) => {
          this.onReady({ reply, request });
          this.ready.fn({ reply, request });
        },
        onError: (reply, request) => this.errors.fn({ reply, request }),
      },
      onRejected: this.rejected.fn,
      onReplyIgnored: this.ignored.fn,
      onIssue: this.issues.fn,
      onRecovered: () => this.recovered.fn(undefined),
      ...overrides,
    });
  }

  requestSpan(requestId: string) {
    return this.tracing.spans(PREFETCH_REQUEST_SPAN).find((span) => span.attributes["request_id"] === requestId);
  }

  async waitForRequestSpan(requestId: string) {
    await waitUntil(() => this.requestSpan(requestId) !== undefined, `span of ${requestId} ended`);
    const span = this.requestSpan(requestId);
    if (span === undefined) throw new Error("unreachable");
    return span;
  }
}

export function readyEnvelope(requestId: string, blueprintId: string): BusEnvelope {
  const ready: KernelArtifactReady = {
    requestId,
    blueprintId,
    artifactRef: `kernels/${blueprintId}.bin`,
    checksum: "sha256:x",
    guardDigest: "",
    prewarmP50Ms: 1.5,
    prewarmP95Ms: 2.5,
  };
  return envelope(BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_READY, KernelArtifactReady.encode(ready).finish());
}

export function errorEnvelope(requestId: string, blueprintId: string, reason: string): BusEnvelope {
  return envelope(BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_ERROR, KernelArtifactError.encode({ requestId, blueprintId, reason }).finish());
}

/** A bus whose consumer of `stream` does not read until open() (so another consumer reads first). */
class GatedBus implements PrefetchBus {
  private release: () => void = () => undefined;
  private readonly gate = new Promise<void>((resolve) => {
    this.release = resolve;
  });

  constructor(
    private readonly inner: PrefetchBus,
    private readonly gatedStream: string,
  ) {}

  open(): void {
    this.release();
  }
  publish(stream: string, env: BusEnvelope): Promise<string> {
    return this.inner.publish(stream, env);
  }
  ensureGroup(stream: string, group: string): Promise<void> {
    return this.inner.ensureGroup(stream, group);
  }
  consumer(options: ConsumerOptions): BusConsumer {
    const consumer = this.inner.consumer(options);
    if (options.stream !== this.gatedStream) return consumer;
    return {
      stream: consumer.stream,
      poll: async (handler, blockMs) => {
        await this.gate;
        return consumer.poll(handler, blockMs);
      },
      close: async () => {
        this.open();
        await consumer.close();
      },
    };
  }
  close(): Promise<void> {
    this.open();
    return this.inner.close();
  }
}

function timestampMs(timestamp: Timestamp | undefined): number {
  if (timestamp === undefined) return Number.NaN;
  return Number(timestamp.seconds) * 1000 + timestamp.nanos / 1_000_000;
}

export function prefetchContract(name: string, harness: () => BusHarness): void {
  describe(`prefetch over ${name}`, () => {
    let h: BusHarness;
    let bus: PrefetchBus;
    let oona: PrefetchBus;
    let fixture: Fixture;
    const cleanups: Array<() => Promise<void>> = [];

    beforeEach(async () => {
      h = harness();
      await h.reset();
      bus = h.makeBus();
      oona = h.makeBus();
      fixture = new Fixture(bus);
      cleanups.push(() => fixture.coordinator.close(), () => bus.close(), () => oona.close());
    });

    afterEach(async () => {
      for (const cleanup of cleanups.splice(0)) await cleanup();
    });

    async function startResponder(): Promise<void> {
      const responder = new PrefetchResponder({ bus: oona, catalog: CATALOG, backoff: { initialMs: 20, maxMs: 200 } });
      await responder.start();
      cleanups.unshift(() => responder.close());
    }

    /** Oona answers only after reading a request; replying earlier would race the group creation. */
    async function published(count: number): Promise<void> {
      await waitUntil(async () => (await h.entries(PREFETCH_STREAMS.requests)).length >= count, `${count} request(s) are published`);
    }

    it("publishes a signed KernelPrefetchRequest envelope on oona.kernels.requests", async () => {
      fixture.coordinator.start();
      const before = Date.now();
      const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
      const explicit = fixture.coordinator.requestKernel("seed-2", "BP002", "run-explicit");
      expect(requestId).toMatch(/^prefetch-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      await published(2);
      const [first, second] = await h.entries(PREFETCH_STREAMS.requests);
      if (first === undefined || second === undefined) throw new Error("unreachable");
      const payload = first.fields.get("payload");
      expect(payload).toBeDefined();
      if (payload === undefined) return;
      expect(first.fields.get("signature")?.toString("utf8")).toBe(hmacBase64(payload, h.secret));
      const env = BusEnvelope.decode(payload);
      expect(env.messageType).toBe(BusMessageType.BUS_MESSAGE_TYPE_KERNEL_PREFETCH_REQUEST);
      const request = KernelPrefetchRequest.decode(env.payload);
      expect(request).toMatchObject({ requestId, blueprintId: "BP001", trainingRunId: "run-1" });
      expect(timestampMs(request.issuedAt)).toBeGreaterThanOrEqual(before - 1000);
      expect(timestampMs(request.issuedAt)).toBeLessThanOrEqual(Date.now() + 1000);
      const explicitRequest = KernelPrefetchRequest.decode(BusEnvelope.decode(second.fields.get("payload") ?? Buffer.alloc(0)).payload);
      expect(explicitRequest).toMatchObject({ requestId: explicit, blueprintId: "BP002", trainingRunId: "run-explicit" });
    });

    it("ready reply from the built-in responder: onReady once, acknowledged, span ended OK", async () => {
      await startResponder();
      fixture.coordinator.start();
      const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
      const call = await fixture.ready.waitFor(1);
      expect(call.request).toEqual({ requestId, seedId: "seed-1", blueprintId: "BP001", trainingRunId: "run-1" });
      expect(call.reply).toMatchObject({ requestId, blueprintId: "BP001", artifactRef: "kernels/BP001.bin", checksum: "sha256:bp001" });
      const span = await fixture.waitForRequestSpan(requestId);
      expect(span.status.code).toBe(SpanStatusCode.OK);
      expect(span.attributes).toMatchObject({ request_id: requestId, seed_id: "seed-1", blueprint_id: "BP001", training_run_id: "run-1" });
      await waitUntil(async () => (await h.pending(PREFETCH_STREAMS.ready, GROUP)) === 0, "the reply is acknowledged");
      expect(fixture.ready.calls).toHaveLength(1);
      expect(fixture.errors.calls).toHaveLength(0);
      expect(fixture.coordinator.pendingCount).toBe(0);
    });

    it("unknown blueprint: the responder answers 'unknown blueprint <id>' and the span ends ERROR", async () => {
      await startResponder();
      fixture.coordinator.start();
      const requestId = fixture.coordinator.requestKernel("seed-9", "BP999");
      const call = await fixture.errors.waitFor(1);
      expect(call.reply).toMatchObject({ requestId, blueprintId: "BP999", reason: "unknown blueprint BP999" });
      expect(call.request.seedId).toBe("seed-9");
      const span = await fixture.waitForRequestSpan(requestId);
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: "unknown blueprint BP999" });
      expect(fixture.ready.calls).toHaveLength(0);
    });

    it("error reply: onError with the reason, span status ERROR with the reason", async () => {
      fixture.coordinator.start();
      const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
      await published(1);
      await oona.publish(PREFETCH_STREAMS.errors, errorEnvelope(requestId, "BP001", "compile failed: out of registers"));
      const call = await fixture.errors.waitFor(1);
      expect(call.reply).toMatchObject({ requestId, reason: "compile failed: out of registers" });
      const span = await fixture.waitForRequestSpan(requestId);
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: "compile failed: out of registers" });
      await waitUntil(async () => (await h.pending(PREFETCH_STREAMS.errors, GROUP)) === 0, "the error reply is acknowledged");
    });

    it("a ready reply for another blueprint is an error (decision 23), never a ready kernel", async () => {
      fixture.coordinator.start();
      const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
      await published(1);
      await oona.publish(PREFETCH_STREAMS.ready, readyEnvelope(requestId, "BP777"));
      const call = await fixture.errors.waitFor(1);
      const reason = "prefetch blueprint mismatch: requested BP001, ready reply carries BP777";
      expect(call.reply).toEqual({ requestId, blueprintId: "BP001", reason });
      expect(fixture.ready.calls).toHaveLength(0);
      const span = await fixture.waitForRequestSpan(requestId);
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: reason });
    });

    it("replies are idempotent by request id: a second reply is acknowledged and ignored", async () => {
      fixture.coordinator.start();
      const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
      await published(1);
      await oona.publish(PREFETCH_STREAMS.ready, readyEnvelope(requestId, "BP001"));
      await oona.publish(PREFETCH_STREAMS.ready, readyEnvelope(requestId, "BP001"));
      await oona.publish(PREFETCH_STREAMS.errors, errorEnvelope(requestId, "BP001", "late error"));
      await fixture.ignored.waitFor(2);
      expect(fixture.ignored.calls.map((call) => call.reason)).toEqual(["duplicate", "duplicate"]);
      await oona.publish(PREFETCH_STREAMS.ready, readyEnvelope("prefetch-not-ours", "BP001"));
      expect(await fixture.ignored.waitFor(3)).toEqual({ stream: PREFETCH_STREAMS.ready, requestId: "prefetch-not-ours", reason: "unknown_request" });
      expect(fixture.ready.calls).toHaveLength(1);
      expect(fixture.errors.calls).toHaveLength(0);
      expect(fixture.tracing.spans(PREFETCH_REQUEST_SPAN)).toHaveLength(1);
      await waitUntil(async () => (await h.pending(PREFETCH_STREAMS.ready, GROUP)) === 0, "all ready replies are acknowledged");
      await waitUntil(async () => (await h.pending(PREFETCH_STREAMS.errors, GROUP)) === 0, "the error reply is acknowledged");
    });

    it("unsigned and badly signed replies are acknowledged, dropped and reported", async () => {
      fixture.coordinator.start();
      const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
      const bytes = Buffer.from(BusEnvelope.encode(readyEnvelope(requestId, "BP001")).finish());
      await published(1);
      await h.appendRaw(PREFETCH_STREAMS.ready, [["payload", bytes]]);
      await h.appendRaw(PREFETCH_STREAMS.ready, [
        ["payload", bytes],
        ["signature", Buffer.from(hmacBase64(bytes, "not-the-secret"))],
      ]);
      await h.appendRaw(PREFETCH_STREAMS.ready, [
        ["payload", bytes],
        ["signature", Buffer.from("%%% not base64 %%%")],
      ]);
      await fixture.rejected.waitFor(3);
      expect(fixture.rejected.calls.map((call) => [call.stream, call.reason])).toEqual([
        [PREFETCH_STREAMS.ready, "missing_signature"],
        [PREFETCH_STREAMS.ready, "invalid_signature"],
        [PREFETCH_STREAMS.ready, "invalid_signature"],
      ]);
      expect(fixture.ready.calls).toHaveLength(0);
      await waitUntil(async () => (await h.pending(PREFETCH_STREAMS.ready, GROUP)) === 0, "rejected entries are acknowledged");
      // The loop is still reading: a correctly signed reply is handled.
      await oona.publish(PREFETCH_STREAMS.ready, readyEnvelope(requestId, "BP001"));
      await fixture.ready.waitFor(1);
      expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
    });

    it("a consumer closed while blocked in a read ends with 'closed', not a failure, without waiting out the block", async () => {
      const consumer = bus.consumer({ stream: PREFETCH_STREAMS.ready, group: GROUP, consumer: "c1" });
      const started = Date.now();
      const round = consumer.poll(() => undefined, 10_000);
      await waitUntil(async () => (await h.blockedReaders(PREFETCH_STREAMS.ready)) === 1, "the consumer is blocked in its read");
      await consumer.close();
      expect(await withTimeout(round, 2000, "the interrupted read")).toBe("closed");
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await consumer.poll(() => undefined)).toBe("closed");
    });

    it("close() while the loops are blocked reading: no issue during or after, no ERROR span", async () => {
      await startResponder();
      fixture.coordinator.start();
      fixture.coordinator.start(); // idempotent
      fixture.coordinator.requestKernel("seed-1", "BP001");
      await fixture.ready.waitFor(1); // both loops have run and are now blocked in a read
      const closing = fixture.coordinator.close();
      expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
      const polls: Array<Error | undefined> = [];
      const poller = setInterval(() => polls.push(fixture.coordinator.pollTaskIssue()), 1);
      await withTimeout(closing, 3000, "close()");
      clearInterval(poller);
      await fixture.coordinator.close(); // idempotent
      expect(polls.every((issue) => issue === undefined)).toBe(true);
      expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
      expect(fixture.coordinator.running).toBe(false);
      expect(fixture.issues.calls).toHaveLength(0);
      expect(fixture.tracing.errorSpans()).toHaveLength(0);
    });

    it("a handler that throws: issue reported with an ERROR span, the reply is redelivered, then recovery", async () => {
      fixture.coordinator.start();
      const failure = new Error("manager exploded");
      let failing = true;
      fixture.onReady = () => {
        if (failing) throw failure;
      };
      const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
      await published(1);
      await oona.publish(PREFETCH_STREAMS.ready, readyEnvelope(requestId, "BP001"));
      expect(await fixture.issues.waitFor(1)).toBe(failure);
      expect(fixture.coordinator.pollTaskIssue()).toBe(failure);
      const loopSpans = fixture.tracing.spans(PREFETCH_LOOP_SPAN);
      expect(loopSpans.length).toBeGreaterThanOrEqual(1);
      expect(loopSpans[0]?.status).toEqual({ code: SpanStatusCode.ERROR, message: "manager exploded" });
      expect(loopSpans[0]?.events.some((event) => event.name === "exception")).toBe(true);
      expect(loopSpans[0]?.attributes).toMatchObject({ loop: "ready", stream: PREFETCH_STREAMS.ready });
      expect(await h.pending(PREFETCH_STREAMS.ready, GROUP)).toBe(1); // not acknowledged
      failing = false;
      await fixture.recovered.waitFor(1);
      expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
      expect(fixture.ready.calls).toHaveLength(1); // only the successful call is recorded
      const span = await fixture.waitForRequestSpan(requestId);
      expect(span.status.code).toBe(SpanStatusCode.OK);
      await waitUntil(async () => (await h.pending(PREFETCH_STREAMS.ready, GROUP)) === 0, "the reply is acknowledged after success");
    });

    it("a reply read by a consumer that crashed before acknowledging is reclaimed and handled exactly once", async () => {
      const gated = new GatedBus(bus, PREFETCH_STREAMS.ready);
      const crashFixture = new Fixture(gated, { claimMinIdleMs: 300, blockMs: 100 });
      cleanups.unshift(() => crashFixture.coordinator.close());
      crashFixture.coordinator.start();
      const requestId = crashFixture.coordinator.requestKernel("seed-1", "BP001");
      await published(1);
      await oona.publish(PREFETCH_STREAMS.ready, readyEnvelope(requestId, "BP001"));
      const stolen = await h.readWithoutAck(PREFETCH_STREAMS.ready, GROUP, "crashed-kasmina");
      expect(stolen).toHaveLength(1);
      expect(await h.pending(PREFETCH_STREAMS.ready, GROUP)).toBe(1);
      gated.open();
      await crashFixture.ready.waitFor(1, 5000, "the reclaimed reply");
      await waitUntil(async () => (await h.pending(PREFETCH_STREAMS.ready, GROUP)) === 0, "the reclaimed reply is acknowledged");
      // Later rounds (own pending, XAUTOCLAIM, blocking read) handle a new reply but not the old one again.
      const second = crashFixture.coordinator.requestKernel("seed-2", "BP001");
      await published(2);
      await oona.publish(PREFETCH_STREAMS.ready, readyEnvelope(second, "BP001"));
      await crashFixture.ready.waitFor(2, 5000, "the second reply");
      expect(crashFixture.ready.calls.map((call) => call.reply.requestId)).toEqual([requestId, second]);
      expect(crashFixture.ignored.calls).toHaveLength(0);
      expect(crashFixture.issues.calls).toHaveLength(0);
    });

    it("KAS-H1-006: killing a loop while running (the bus closes under it) ⇒ 'exited unexpectedly'", async () => {
      fixture.coordinator.start();
      await bus.close();
      const issue = await fixture.issues.waitFor(1);
      expect(issue.message).toMatch(/Kasmina prefetch (ready|error) task exited unexpectedly/);
      expect(fixture.coordinator.pollTaskIssue()?.message).toMatch(/exited unexpectedly/);
      expect(fixture.tracing.errorSpans().some((span) => span.name === PREFETCH_LOOP_SPAN)).toBe(true);
      await fixture.coordinator.close();
      expect(fixture.coordinator.pollTaskIssue()).toBeUndefined();
    });
  });
}
