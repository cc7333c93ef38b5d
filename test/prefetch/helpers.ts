// Shared test tools for the prefetch suites: a real OTel tracer with an in-memory exporter, call
// recorders that can be awaited, and bounded waits (never fixed sleeps).
import { createHmac } from "node:crypto";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { SpanStatusCode } from "@opentelemetry/api";
import { otelTracing } from "../../src/infra/otel-tracing.js";
import type { TracingPort } from "../../src/kasmina/ports.js";

export interface RecordedTracing {
  tracing: TracingPort;
  spans(name?: string): ReadableSpan[];
  errorSpans(): ReadableSpan[];
}

export function recordedTracing(): RecordedTracing {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const spans = (name?: string): ReadableSpan[] => exporter.getFinishedSpans().filter((span) => name === undefined || span.name === name);
  return {
    tracing: otelTracing(provider.getTracer("kasmina-test")),
    spans,
    errorSpans: () => spans().filter((span) => span.status.code === SpanStatusCode.ERROR),
  };
}

/** Records calls of a callback; `next(n)` resolves once n calls have been seen. */
export class Recorder<T> {
  readonly calls: T[] = [];
  private waiters: Array<{ count: number; resolve: () => void }> = [];

  readonly fn = (value: T): void => {
    this.calls.push(value);
    const ready = this.waiters.filter((waiter) => this.calls.length >= waiter.count);
    this.waiters = this.waiters.filter((waiter) => this.calls.length < waiter.count);
    for (const waiter of ready) waiter.resolve();
  };

  /** Resolves with the `count`-th call (1-based, counting every call so far). */
  async waitFor(count = 1, timeoutMs = 5000, what = "call"): Promise<T> {
    if (this.calls.length < count) {
      await withTimeout(
        new Promise<void>((resolve) => this.waiters.push({ count, resolve })),
        timeoutMs,
        `${what} #${count} (seen ${this.calls.length})`,
      );
    }
    return this.calls[count - 1] as T;
  }
}

export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Re-checks `condition` every 10 ms until it holds; fails with `what` after `timeoutMs`. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Independent HMAC (not the code under test): base64 HMAC-SHA256 keyed by the UTF-8 secret. */
export function hmacBase64(bytes: Uint8Array, secret: string): string {
  return createHmac("sha256", secret).update(bytes).digest("base64");
}
