// Redis Streams bus (KASMINA_BUS=redis), wire-compatible with Oona: XADD with fields payload
// (+ signature), consumer groups created when missing, XREADGROUP BLOCK, XACK after handling,
// XAUTOCLAIM for entries a crashed consumer read but never acknowledged.
//
// Outages: ioredis reconnects on its own (retryStrategy, exponential backoff). Commands are not
// queued while the connection is down (enableOfflineQueue: false): a command waits a bounded time
// for the connection and then fails, so the consumer loop reports the outage while it lasts and
// resumes by itself when Redis is back, without restarting the process.
import { Redis, type RedisOptions } from "ioredis";
import type { BusEnvelope } from "../leyline.js";
import { entryFields, errorMessage, type BusConsumer, type ConsumerOptions, type PrefetchBus, type StreamEntry } from "../prefetch/bus.js";
import { GroupConsumer, type StreamTransport } from "../prefetch/group-consumer.js";

export interface RedisBusOptions {
  url: string;
  secret?: string | undefined;
  /** A command waits this long for a (re)connection before failing (default 1000 ms). */
  readyTimeoutMs?: number;
  /** Reconnect backoff: first delay and cap (defaults 100 ms, 2000 ms). */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  /** Streams are trimmed to about this many entries on publish (XADD MAXLEN ~; default 10000). */
  maxStreamLength?: number;
}

/** The URL without credentials, for error messages. */
function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.toString();
  } catch {
    return "redis";
  }
}

/** One ioredis connection that fails fast (bounded wait) instead of queueing while Redis is away. */
class RedisConnection {
  readonly client: Redis;
  private lastError: Error | undefined;
  private closed = false;
  private readonly abortWaits = new Set<() => void>();

  constructor(private readonly options: RedisBusOptions) {
    const initial = options.reconnectInitialMs ?? 100;
    const max = options.reconnectMaxMs ?? 2000;
    const redisOptions: RedisOptions = {
      // RESP2 keeps the classic XREADGROUP reply shape [[stream, entries]] that the parser below reads
      // (ioredis 6 defaults to RESP3, where raw calls return the map flattened).
      protocol: 2,
      enableOfflineQueue: false,
      // A command in flight when the connection drops fails instead of being replayed later.
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(initial * 2 ** Math.max(0, times - 1), max),
      connectTimeout: 5000,
    };
    this.client = new Redis(options.url, redisOptions);
    // Without a listener ioredis prints every connection error; we keep the last one for messages.
    this.client.on("error", (error: Error) => {
      this.lastError = error;
    });
  }

  private async ready(): Promise<Redis> {
    if (this.closed) throw new Error("redis bus connection is closed");
    if (this.client.status === "ready") return this.client;
    const timeoutMs = this.options.readyTimeoutMs ?? 1000;
    await new Promise<void>((resolve, reject) => {
      const settle = (error?: Error): void => {
        clearTimeout(timer);
        this.client.off("ready", onReady);
        this.abortWaits.delete(onClose);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onReady = (): void => settle();
      // close() must not wait out the timeout of a command that is still waiting for a connection.
      const onClose = (): void => settle(new Error("redis bus connection is closed"));
      const timer = setTimeout(() => {
        const cause = this.lastError === undefined ? `status ${this.client.status}` : this.lastError.message;
        settle(new Error(`redis unavailable at ${redactedUrl(this.options.url)}: ${cause}`));
      }, timeoutMs);
      this.client.once("ready", onReady);
      this.abortWaits.add(onClose);
    });
    return this.client;
  }

  /** Runs one command; a failure caused by a lost connection says so instead of ioredis' retry-limit text. */
  async run<T>(command: (client: Redis) => Promise<T>): Promise<T> {
    const client = await this.ready();
    try {
      return await command(client);
    } catch (error) {
      if (client.status === "ready" || this.closed) throw error;
      throw new Error(`redis connection to ${redactedUrl(this.options.url)} lost: ${errorMessage(error)}`, { cause: error });
    }
  }

  close(): void {
    this.closed = true;
    for (const abort of [...this.abortWaits]) abort();
    this.client.disconnect();
  }
}

function isBusyGroup(error: unknown): boolean {
  return errorMessage(error).startsWith("BUSYGROUP");
}

function asBuffer(value: unknown, what: string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  throw new Error(`unexpected redis reply: ${what} is not a bulk string`);
}

/** [id, [field, value, ...]] → StreamEntry; a deleted entry (null fields) yields undefined. */
function parseEntry(raw: unknown): StreamEntry | undefined {
  if (!Array.isArray(raw) || raw.length !== 2) throw new Error("unexpected redis reply: stream entry is not [id, fields]");
  const [id, flat] = raw as [unknown, unknown];
  if (flat === null) return undefined;
  if (!Array.isArray(flat) || flat.length % 2 !== 0) throw new Error("unexpected redis reply: entry fields are not pairs");
  const fields = new Map<string, Buffer>();
  for (let i = 0; i < flat.length; i += 2) fields.set(asBuffer(flat[i], "field name").toString("utf8"), asBuffer(flat[i + 1], "field value"));
  return { id: asBuffer(id, "entry id").toString("utf8"), fields };
}

function parseEntries(raw: unknown): StreamEntry[] {
  if (!Array.isArray(raw)) throw new Error("unexpected redis reply: entries are not an array");
  return raw.map(parseEntry).filter((entry): entry is StreamEntry => entry !== undefined);
}

class RedisTransport implements StreamTransport {
  constructor(private readonly connection: RedisConnection) {}

  async createGroup(stream: string, group: string): Promise<void> {
    try {
      await this.connection.run((client) => client.call("XGROUP", "CREATE", stream, group, "$", "MKSTREAM"));
    } catch (error) {
      if (!isBusyGroup(error)) throw error;
    }
  }

  async readGroup(stream: string, group: string, consumer: string, cursor: ">" | "0", count: number, blockMs?: number): Promise<StreamEntry[]> {
    const block = blockMs === undefined ? [] : ["BLOCK", blockMs];
    const reply = await this.connection.run((client) => client.callBuffer("XREADGROUP", "GROUP", group, consumer, "COUNT", count, ...block, "STREAMS", stream, cursor));
    // null: the block timed out; else [[stream, entries]].
    if (reply === null) return [];
    if (!Array.isArray(reply) || reply.length === 0) return [];
    const first = reply[0] as unknown;
    if (!Array.isArray(first) || first.length !== 2) throw new Error("unexpected redis reply to XREADGROUP");
    return parseEntries(first[1]);
  }

  async autoClaim(stream: string, group: string, consumer: string, minIdleMs: number, count: number): Promise<StreamEntry[]> {
    // Reply: [next cursor, entries, deleted ids (Redis 7)].
    const minIdle = Math.max(0, Math.floor(minIdleMs));
    const reply = await this.connection.run((client) => client.callBuffer("XAUTOCLAIM", stream, group, consumer, minIdle, "0-0", "COUNT", count));
    if (!Array.isArray(reply) || reply.length < 2) throw new Error("unexpected redis reply to XAUTOCLAIM");
    return parseEntries(reply[1]);
  }

  async ack(stream: string, group: string, id: string): Promise<void> {
    await this.connection.run((client) => client.call("XACK", stream, group, id));
  }

  async close(): Promise<void> {
    this.connection.close();
  }
}

export class RedisBus implements PrefetchBus {
  private readonly commands: RedisConnection;
  private readonly consumers = new Set<GroupConsumer>();
  private closed = false;

  constructor(private readonly options: RedisBusOptions) {
    this.commands = new RedisConnection(options);
  }

  async publish(stream: string, envelope: BusEnvelope): Promise<string> {
    this.assertOpen();
    const maxLength = this.options.maxStreamLength ?? 10_000;
    const fields = entryFields(envelope, this.options.secret).flat();
    const id = await this.commands.run((client) => client.call("XADD", stream, "MAXLEN", "~", maxLength, "*", ...fields));
    if (typeof id !== "string") throw new Error("unexpected redis reply to XADD");
    return id;
  }

  async ensureGroup(stream: string, group: string): Promise<void> {
    this.assertOpen();
    await new RedisTransport(this.commands).createGroup(stream, group);
  }

  consumer(options: ConsumerOptions): BusConsumer {
    this.assertOpen();
    // Each consumer blocks in XREADGROUP, so each gets its own connection.
    const transport = new RedisTransport(new RedisConnection(this.options));
    const consumer = new GroupConsumer(transport, options, this.options.secret, (done) => this.consumers.delete(done));
    this.consumers.add(consumer);
    return consumer;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.consumers].map((consumer) => consumer.close()));
    this.commands.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("redis bus is closed");
  }
}
