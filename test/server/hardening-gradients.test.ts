// Regression tests for the hostile review's ReportGradients findings (issue 10 items 3 and 5,
// issue 9 item 2: distinct keys and exact-mode copies), over a real socket.
import { afterEach, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import type { KasminaServiceClient, ReportGradientsRequest, ReportGradientsResponse } from "../../generated/esper/kasmina/v1/kasmina.js";
import { GradientSide } from "../../generated/esper/kasmina/v1/kasmina.js";
import { IsolationSession } from "../../src/isolation/index.js";
import { call } from "../support/grpc-clients.js";
import { germinate, startHarness, type Harness } from "../support/harness.js";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

function stream(client: KasminaServiceClient, chunks: readonly ReportGradientsRequest[]): Promise<ReportGradientsResponse> {
  return new Promise((resolve, reject) => {
    const c = client.reportGradients((error: ServiceError | null, response: ReportGradientsResponse) => (error ? reject(error) : resolve(response)));
    for (const chunk of chunks) c.write(chunk);
    c.end();
  });
}

async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  const error = (await promise.then(
    () => undefined,
    (e: unknown) => e,
  )) as ServiceError | undefined;
  if (error === undefined) throw new Error("expected the stream to be refused");
  return error;
}

const floats = (...values: number[]): Buffer => Buffer.from(new Float32Array(values).buffer);
const HOST = GradientSide.GRADIENT_SIDE_HOST;
const SEED = GradientSide.GRADIENT_SIDE_SEED;
const chunk = (paramKey: string, side: GradientSide, numel: bigint, offset: bigint, values: Buffer): ReportGradientsRequest => ({
  seedId: "s",
  paramKey,
  side,
  numel,
  offset,
  values,
});

async function collectingSeed(env: Record<string, string> = {}): Promise<{ h: Harness; session: IsolationSession }> {
  const h = await startHarness(env);
  await call(h.client, h.client.registerHost, { parameters: [{ key: "host.w", shape: [4], trainable: true, elementBytes: 4 }] });
  await call(h.client, h.client.applyCommand, { command: germinate(h.clock, "s") });
  const session = h.app.manager.isolationSession("s");
  if (!(session instanceof IsolationSession)) throw new Error("seed s has no isolation session");
  return { h, session };
}

/** Everything a pass may change in a session, for before/after comparison. */
function sessionState(session: IsolationSession) {
  return { snapshot: session.snapshot(), parameters: session.parameterCount, copyBytes: session.copyBytes };
}

describe("A rejected ReportGradients stream leaves state behind", () => {
  it("an honest pass with numel 2 is accepted after a rejected stream declared numel 999 for the key", async () => {
    const { h, session } = await collectingSeed();
    harness = h;
    const before = sessionState(session);
    const rejected = await failure(stream(h.client, [chunk("p", HOST, 999n, 0n, floats(1, 2))]));
    expect(rejected.code).toBe(status.INVALID_ARGUMENT);
    expect(rejected.details).toMatch(/chunks cover 2 of 999 elements/);
    expect(sessionState(session)).toEqual(before);
    const honest = await stream(h.client, [chunk("p", HOST, 2n, 0n, floats(1, 0)), chunk("p", SEED, 2n, 0n, floats(0, 3))]);
    expect(honest.report?.elementsProcessed).toBe(4n);
    expect(honest.report?.dotProduct).toBe(0);
  });

  it("three rejected streams of 1,000 keys each leave no key, sample or accumulator behind", async () => {
    const { h, session } = await collectingSeed();
    harness = h;
    const before = sessionState(session);
    for (let s = 0; s < 3; s++) {
      const chunks = Array.from({ length: 1000 }, (_, i) => chunk(`${"k".repeat(240)}-${s}-${i}`, HOST, 4n, 0n, floats(1, 2, 3, 4)));
      chunks.push(chunk("bad", HOST, 4n, 0n, floats(Number.NaN, 0, 0, 0))); // non-finite: the whole stream is refused
      const error = await failure(stream(h.client, chunks));
      expect(error.code).toBe(status.INVALID_ARGUMENT);
    }
    expect(sessionState(session)).toEqual(before);
    expect(session.parameterCount).toBe(0);
  });

  it("a cancelled stream leaves the session as it was", async () => {
    const { h, session } = await collectingSeed();
    harness = h;
    const before = sessionState(session);
    const c = h.client.reportGradients(() => undefined);
    c.write(chunk("p", HOST, 8n, 0n, floats(1, 2, 3, 4)));
    await new Promise((r) => setTimeout(r, 100));
    c.cancel();
    await new Promise((r) => setTimeout(r, 100));
    expect(sessionState(session)).toEqual(before);
  });
});

describe("ReportGradients: distinct parameter keys per isolation session are bounded", () => {
  it("refuses the key past KASMINA_MAX_SESSION_PARAMETERS with RESOURCE_EXHAUSTED, applying nothing of the stream", async () => {
    const { h, session } = await collectingSeed({ KASMINA_MAX_SESSION_PARAMETERS: "10" });
    harness = h;
    const before = sessionState(session);
    const eleven = Array.from({ length: 11 }, (_, i) => chunk(`p${i}`, HOST, 1n, 0n, floats(1)));
    const error = await failure(stream(h.client, eleven));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toMatch(/distinct parameter key 11 of this session; the limit is 10 \(KASMINA_MAX_SESSION_PARAMETERS\)/);
    expect(sessionState(session)).toEqual(before);
    await stream(h.client, eleven.slice(0, 10));
    expect(session.parameterCount).toBe(10);
    expect((await failure(stream(h.client, [chunk("new", HOST, 1n, 0n, floats(1))]))).code).toBe(status.RESOURCE_EXHAUSTED);
    // Known keys still flow.
    expect((await stream(h.client, [chunk("p3", SEED, 1n, 0n, floats(2))])).report?.dotProduct).toBe(2);
  });
});

describe("Exact mode trusts numel", () => {
  it("numel 2^33 with one 4-byte chunk answers RESOURCE_EXHAUSTED naming the copy budget, never INTERNAL", async () => {
    const { h, session } = await collectingSeed({ KASMINA_PROJECTION_SAMPLES: "0" });
    harness = h;
    const error = await failure(stream(h.client, [chunk("p", HOST, 2n ** 33n, 0n, floats(1))]));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toMatch(/exact mode would hold 34359738368 bytes of gradient copies; the limit is 1073741824 \(KASMINA_MAX_EXACT_COPY_BYTES\)/);
    expect(session.copyBytes).toBe(0);
  });

  it("four concurrent streams claiming numel 2^30 are refused before anything is allocated", async () => {
    const { h, session } = await collectingSeed({ KASMINA_PROJECTION_SAMPLES: "0" });
    harness = h;
    const rssBefore = process.memoryUsage().rss;
    const errors = await Promise.all(Array.from({ length: 4 }, (_, i) => failure(stream(h.client, [chunk(`p${i}`, HOST, 2n ** 30n, 0n, floats(1))]))));
    expect(errors.map((e) => e.code)).toEqual(Array(4).fill(status.RESOURCE_EXHAUSTED));
    // 4 × 4 GiB were claimed; a claim reserves nothing (before: 16 GiB of virtual memory).
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 1024 * 1024);
    expect(session.copyBytes).toBe(0);
  });

  it("counts stashed copies and open passes against KASMINA_MAX_EXACT_COPY_BYTES; pairing gives the bytes back", async () => {
    const { h, session } = await collectingSeed({ KASMINA_PROJECTION_SAMPLES: "0", KASMINA_MAX_EXACT_COPY_BYTES: "130" });
    harness = h;
    const sixteen = floats(...Array.from({ length: 16 }, (_, i) => i));
    await stream(h.client, [chunk("a", HOST, 16n, 0n, sixteen)]);
    expect(session.copyBytes).toBe(64); // a's host side waits for its seed side
    const over = await failure(stream(h.client, [chunk("b", HOST, 16n, 0n, sixteen), chunk("b", SEED, 16n, 0n, sixteen)]));
    expect(over.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(over.details).toMatch(/would hold 192 bytes/);
    expect(session.copyBytes).toBe(64);
    await stream(h.client, [chunk("a", SEED, 16n, 0n, sixteen)]);
    expect(session.copyBytes).toBe(0);
    await stream(h.client, [chunk("b", HOST, 16n, 0n, sixteen), chunk("b", SEED, 16n, 0n, sixteen)]);
    expect(session.copyBytes).toBe(0);
  });
});
