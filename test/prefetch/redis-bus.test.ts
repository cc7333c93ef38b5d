// The prefetch contract over Redis Streams against a real redis-server, plus what only Redis has:
// the server going away and coming back on the same port.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { RedisBus } from "../../src/infra/redis-bus.js";
import { PREFETCH_STREAMS, type StreamEntry } from "../../src/prefetch/bus.js";
import { RedisServer } from "../support/redis-server.js";
import { Fixture, prefetchContract, readyEnvelope, type BusHarness } from "./contract.js";
import { waitUntil } from "./helpers.js";

const SECRET = "redis-secret";
let server: RedisServer | undefined;
let admin: Redis;

beforeAll(async () => {
  server = await RedisServer.start();
  admin = new Redis(redis().url, { protocol: 2, lazyConnect: true, retryStrategy: () => 50 });
  admin.on("error", () => undefined); // the outage test stops the server under it
  await admin.connect();
});

afterAll(async () => {
  // Guarded: when redis-server is missing, beforeAll already failed with the reason.
  admin?.disconnect();
  await server?.stop();
});

function redis(): RedisServer {
  if (server === undefined) throw new Error("redis-server did not start");
  return server;
}

function entriesOf(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply)) return [];
  return reply.map((raw) => {
    const [id, flat] = raw as [Buffer, Buffer[]];
    const fields = new Map<string, Buffer>();
    for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), flat[i + 1] as Buffer);
    return { id: id.toString("utf8"), fields };
  });
}

const buses: RedisBus[] = [];
const harness: BusHarness = {
  secret: SECRET,
  makeBus: () => {
    const bus = new RedisBus({ url: redis().url, secret: SECRET, readyTimeoutMs: 500, reconnectInitialMs: 20, reconnectMaxMs: 200 });
    buses.push(bus);
    return bus;
  },
  appendRaw: async (stream, fields) => {
    await admin.call("XADD", stream, "*", ...fields.flat());
  },
  entries: async (stream) => entriesOf(await admin.callBuffer("XRANGE", stream, "-", "+")),
  pending: async (stream, group) => {
    const summary = await admin.call("XPENDING", stream, group);
    return Array.isArray(summary) ? Number(summary[0]) : Number.NaN;
  },
  readWithoutAck: async (stream, group, consumer) => {
    const reply = await admin.callBuffer("XREADGROUP", "GROUP", group, consumer, "COUNT", 10, "STREAMS", stream, ">");
    if (!Array.isArray(reply) || reply.length === 0) return [];
    const [, entries] = reply[0] as [Buffer, unknown];
    return entriesOf(entries).map((entry) => entry.id);
  },
  blockedReaders: async (_stream) => {
    // CLIENT LIST shows each connection's last command, not its keys; each test starts with one reader.
    const list = String(await admin.call("CLIENT", "LIST"));
    return list.split("\n").filter((line) => line.includes("cmd=xreadgroup") && line.includes("flags=b")).length;
  },
  reset: async () => {
    await admin.call("FLUSHALL");
  },
};

prefetchContract("Redis Streams", () => harness);

describe("prefetch over Redis Streams: outages", () => {
  let fixture: Fixture;
  let bus: RedisBus;
  let oona: RedisBus;

  beforeEach(async () => {
    await harness.reset();
    bus = harness.makeBus() as RedisBus;
    oona = harness.makeBus() as RedisBus;
    fixture = new Fixture(bus, { blockMs: 100 });
  });

  afterEach(async () => {
    await fixture.coordinator.close();
    await bus.close();
    await oona.close();
  });

  it("creates missing consumer groups with MKSTREAM and keeps existing ones (BUSYGROUP ignored)", async () => {
    await bus.ensureGroup(PREFETCH_STREAMS.ready, "kasmina");
    await bus.ensureGroup(PREFETCH_STREAMS.ready, "kasmina");
    const groups = await admin.call("XINFO", "GROUPS", PREFETCH_STREAMS.ready);
    expect(Array.isArray(groups) ? groups.length : 0).toBe(1);
  });

  it("Redis stopped ⇒ issue and unhealthy; restarted on the same port ⇒ recovery without a new coordinator", async () => {
    let healthy = true;
    const coordinator = new Fixture(bus, {
      blockMs: 100,
      onIssue: () => {
        healthy = false;
      },
      onRecovered: () => {
        healthy = true;
      },
    });
    fixture = coordinator; // closed by afterEach
    coordinator.coordinator.start();
    const first = coordinator.coordinator.requestKernel("seed-1", "BP001");
    await waitUntil(async () => (await harness.entries(PREFETCH_STREAMS.requests)).length === 1, "the request is published");
    await oona.publish(PREFETCH_STREAMS.ready, readyEnvelope(first, "BP001"));
    await coordinator.ready.waitFor(1);

    await redis().stop();
    await waitUntil(() => !healthy, "the health callback reports the outage");
    const issue = coordinator.coordinator.pollTaskIssue();
    expect(issue?.message).toMatch(/redis/i);
    expect(coordinator.tracing.errorSpans().some((span) => span.name === "kasmina.prefetch.consumer_loop")).toBe(true);

    await redis().restart();
    await waitUntil(() => healthy, "the health callback reports recovery", 10_000);
    expect(coordinator.coordinator.pollTaskIssue()).toBeUndefined();
    expect(coordinator.coordinator.running).toBe(true);

    // The restarted server is empty: groups are re-created and the round trip works again.
    const second = coordinator.coordinator.requestKernel("seed-2", "BP001");
    await waitUntil(async () => (await harness.entries(PREFETCH_STREAMS.requests)).length === 1, "the request is published after the restart");
    await oona.publish(PREFETCH_STREAMS.ready, readyEnvelope(second, "BP001"));
    const call = await coordinator.ready.waitFor(2, 10_000, "the reply after the restart");
    expect(call.reply.requestId).toBe(second);
  });

  it("a publish while Redis is down fails the request through onError instead of leaving it waiting", async () => {
    fixture.coordinator.start();
    await redis().stop();
    try {
      const requestId = fixture.coordinator.requestKernel("seed-1", "BP001");
      const call = await fixture.errors.waitFor(1);
      expect(call.reply.requestId).toBe(requestId);
      expect("reason" in call.reply ? call.reply.reason : "").toMatch(/^prefetch publish failed: redis/);
      expect(fixture.coordinator.pendingCount).toBe(0);
    } finally {
      await redis().restart();
    }
  });
});
