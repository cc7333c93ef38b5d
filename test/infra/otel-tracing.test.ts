// TracingPort over a real OTel tracer (BasicTracerProvider + in-memory exporter, no mocks).
import { describe, expect, it } from "vitest";
import { SpanStatusCode } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { otelTracing } from "../../src/infra/otel-tracing.js";

function setup() {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { exporter, tracing: otelTracing(provider.getTracer("test")) };
}

describe("otelTracing", () => {
  it("starts a span with its attributes and ends it OK without an outcome", () => {
    const { exporter, tracing } = setup();
    const span = tracing.startSpan("kasmina.prefetch.request", { request_id: "prefetch-1", seed_id: "seed-1" });
    span.setAttribute("attempt", 2);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    span.end();
    const [finished] = exporter.getFinishedSpans();
    expect(finished?.name).toBe("kasmina.prefetch.request");
    expect(finished?.attributes).toEqual({ request_id: "prefetch-1", seed_id: "seed-1", attempt: 2 });
    expect(finished?.status).toEqual({ code: SpanStatusCode.OK });
  });

  it("ends with status ERROR whose message is the reason, and records exceptions as events", () => {
    const { exporter, tracing } = setup();
    const span = tracing.startSpan("kasmina.prefetch.consumer_loop");
    span.recordException(new Error("redis unavailable"));
    span.end({ error: "redis unavailable" });
    const [finished] = exporter.getFinishedSpans();
    expect(finished?.status).toEqual({ code: SpanStatusCode.ERROR, message: "redis unavailable" });
    const exception = finished?.events.find((event) => event.name === "exception");
    expect(exception?.attributes?.["exception.message"]).toBe("redis unavailable");
  });

  it("ends a span once: a second end changes nothing", () => {
    const { exporter, tracing } = setup();
    const span = tracing.startSpan("kasmina.prefetch.request");
    span.end({ error: "prefetch timed out" });
    span.end();
    expect(exporter.getFinishedSpans()).toHaveLength(1);
    expect(exporter.getFinishedSpans()[0]?.status).toEqual({ code: SpanStatusCode.ERROR, message: "prefetch timed out" });
  });
});
