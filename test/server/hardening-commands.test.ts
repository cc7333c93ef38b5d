// Regression tests for the hostile review's findings on telemetry and client strings (issue 10
// items 1–2, issue 9 item 2), over a real socket.
import { afterEach, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import type { KasminaServiceClient, WatchTelemetryResponse } from "../../generated/esper/kasmina/v1/kasmina.js";
import { TelemetryPacket, type AdaptationCommand } from "../../src/leyline.js";
import { DrainTelemetryResponse } from "../../generated/esper/kasmina/v1/kasmina.js";
import { call } from "../support/grpc-clients.js";
import { SECRET, command, germinate, startHarness, type Harness } from "../support/harness.js";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  const error = (await promise.then(
    () => undefined,
    (e: unknown) => e,
  )) as ServiceError | undefined;
  if (error === undefined) throw new Error("expected the call to fail");
  return error;
}

const apply = (client: KasminaServiceClient, cmd: AdaptationCommand) => call(client, client.applyCommand, { command: cmd });

describe("DrainTelemetry loses packets when the reply is larger than the message limit", () => {
  it("delivers every packet exactly once over repeated drains, each reply under KASMINA_MAX_MESSAGE_BYTES, no drain failing", async () => {
    const limit = 8 * 1024;
    harness = await startHarness({ KASMINA_MAX_MESSAGE_BYTES: String(limit) });
    const { client, clock } = harness;
    let emitted = 0;
    // Long seed ids make every packet large; 40 packets are far more than one reply can hold.
    for (let i = 0; i < 40; i++) {
      await apply(client, germinate(clock, `seed-${i}-${"x".repeat(200)}`));
      emitted += (await call(client, client.finalizeStep, { stepIndex: BigInt(i + 1) })).packetsEmitted;
    }
    expect(emitted).toBeGreaterThan(40);
    const seen = new Map<string, number>();
    let replies = 0;
    for (;;) {
      const reply = await call(client, client.drainTelemetry, { maxPackets: 0 });
      replies += 1;
      const encoded = DrainTelemetryResponse.encode(reply).finish().length;
      expect(encoded).toBeLessThanOrEqual(limit);
      for (const packet of reply.packets) seen.set(packet.packetId, (seen.get(packet.packetId) ?? 0) + 1);
      expect(reply.droppedPackets).toBe(0n);
      expect(Number(reply.remainingPackets)).toBe(emitted - [...seen.values()].reduce((a, b) => a + b, 0));
      if (reply.remainingPackets === 0n) break;
      expect(reply.packets.length).toBeGreaterThan(0);
    }
    expect(replies).toBeGreaterThan(1);
    expect(seen.size).toBe(emitted);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect((await call(client, client.drainTelemetry, { maxPackets: 0 })).packets).toEqual([]);
  });

  it("honours max_packets together with the size bound and reports remaining_packets", async () => {
    harness = await startHarness();
    const { client, clock } = harness;
    let emitted = 0;
    for (let i = 0; i < 5; i++) {
      await apply(client, germinate(clock, `seed-${i}`));
      emitted += (await call(client, client.finalizeStep, { stepIndex: BigInt(i + 1) })).packetsEmitted;
    }
    const first = await call(client, client.drainTelemetry, { maxPackets: 2 });
    expect(first.packets).toHaveLength(2);
    expect(first.remainingPackets).toBe(BigInt(emitted - 2));
    const rest = await call(client, client.drainTelemetry, { maxPackets: 0 });
    expect(rest.packets).toHaveLength(emitted - 2);
    expect(rest.remainingPackets).toBe(0n);
  });
});

describe("Rejected commands amplify memory: client strings are capped before verification", () => {
  it("answers INVALID_ARGUMENT for a 1 MB command_id or annotation, records no event, and the next packets stay small", async () => {
    harness = await startHarness();
    const { client, clock } = harness;
    const big = "c".repeat(1024 * 1024);
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < 20; i++) {
      // Invalid signatures, as in the review: verification is never reached.
      const byId = command(clock, { commandId: `${big}${i}` });
      byId.annotations.set("signature", "not-a-signature");
      const errorId = await failure(apply(client, byId));
      expect(errorId.code).toBe(status.INVALID_ARGUMENT);
      expect(errorId.details).toMatch(/^command_id is 10485\d\d characters, over the limit of 256/);
      // Error messages quote at most 128 characters of client input.
      expect(errorId.details.length).toBeLessThan(400);

      const byAnnotation = command(clock, {});
      byAnnotation.annotations.set("note", big);
      byAnnotation.annotations.set("signature", "not-a-signature");
      const errorAnnotation = await failure(apply(client, byAnnotation));
      expect(errorAnnotation.code).toBe(status.INVALID_ARGUMENT);
      expect(errorAnnotation.details).toMatch(/over the limit of 16384 \(KASMINA_MAX_ANNOTATION_BYTES\)/);
    }
    expect(await call(client, client.finalizeStep, {})).toEqual({ packetsEmitted: 0 });
    const { packets } = await call(client, client.drainTelemetry, { maxPackets: 0 });
    const bytes = packets.reduce((sum, p) => sum + TelemetryPacket.encode(p).finish().length, 0);
    expect(bytes).toBeLessThan(16 * 1024);
    // 40 MB of strings were sent; none of it may stay (before the fix the events kept all of it).
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(200 * 1024 * 1024);
  });

  it("caps annotation entries (KASMINA_MAX_ANNOTATIONS), seed ids and blueprint ids, and still rejects a bad signature inside the caps", async () => {
    harness = await startHarness({ KASMINA_MAX_ANNOTATIONS: "4" });
    const { client, clock } = harness;
    const many = command(clock, {});
    for (let i = 0; i < 4; i++) many.annotations.set(`k${i}`, "v"); // plus the signature: 5
    const manyError = await failure(apply(client, many));
    expect(manyError.code).toBe(status.INVALID_ARGUMENT);
    expect(manyError.details).toMatch(/annotations has 5 entries, over the limit of 4 \(KASMINA_MAX_ANNOTATIONS\)/);

    const longSeed = await failure(apply(client, germinate(clock, "s".repeat(257))));
    expect(longSeed.code).toBe(status.INVALID_ARGUMENT);
    expect(longSeed.details).toMatch(/^target_seed_id is 257 characters/);
    const longBlueprint = await failure(apply(client, germinate(clock, "seed-1", "B".repeat(300))));
    expect(longBlueprint.details).toMatch(/^seed_operation.blueprint_id is 300 characters/);

    const bad = command(clock, {}, `${SECRET}-wrong`);
    const badError = await failure(apply(client, bad));
    expect(badError.code).toBe(status.PERMISSION_DENIED);
    expect(badError.details).toMatch(/^invalid_signature/);
  });

  it("refuses RegisterHost/RegisterTeacher lists over KASMINA_MAX_REGISTERED_PARAMETERS whole (RESOURCE_EXHAUSTED) and long keys (INVALID_ARGUMENT)", async () => {
    harness = await startHarness({ KASMINA_MAX_REGISTERED_PARAMETERS: "100" });
    const { client } = harness;
    const specs = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `p${i}`, shape: [2], trainable: true, elementBytes: 4 }));
    const host = await failure(call(client, client.registerHost, { parameters: specs(101) }));
    expect(host.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(host.details).toMatch(/RegisterHost parameters lists 101 entries, over the limit of 100 \(KASMINA_MAX_REGISTERED_PARAMETERS\)/);
    const teacher = await failure(call(client, client.registerTeacher, { parameters: specs(1), buffers: specs(101) }));
    expect(teacher.code).toBe(status.RESOURCE_EXHAUSTED);
    const longKey = await failure(call(client, client.registerHost, { parameters: [{ key: "k".repeat(257), shape: [1], trainable: true, elementBytes: 4 }] }));
    expect(longKey.code).toBe(status.INVALID_ARGUMENT);
    expect(await call(client, client.registerHost, { parameters: specs(100) })).toEqual({ parameterCount: 100 });
  });
});

describe("Nothing bounds the number of watchers", () => {
  it("refuses a watcher past KASMINA_MAX_WATCHERS with RESOURCE_EXHAUSTED and admits one again when another leaves", async () => {
    harness = await startHarness({ KASMINA_MAX_WATCHERS: "2" });
    const { client } = harness;
    const open = () => {
      const stream = client.watchTelemetry({});
      const errors: ServiceError[] = [];
      stream.on("error", (e: ServiceError) => errors.push(e));
      stream.on("data", (_m: WatchTelemetryResponse) => undefined);
      return { stream, errors };
    };
    const a = open();
    const b = open();
    await new Promise((r) => setTimeout(r, 200));
    const c = open();
    await new Promise((r) => c.stream.on("error", r));
    expect(c.errors[0]?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(c.errors[0]?.details).toMatch(/limit is 2 \(KASMINA_MAX_WATCHERS\)/);
    a.stream.cancel();
    await new Promise((r) => setTimeout(r, 200));
    const d = open();
    await new Promise((r) => setTimeout(r, 200));
    expect(d.errors).toEqual([]);
    b.stream.cancel();
    d.stream.cancel();
  });
});
