// TracingPort over an OpenTelemetry Tracer. An outcome with an error ends the span with status
// ERROR and the reason as the status message; no outcome ends it OK. A span is ended once: later
// calls are ignored so a double settle cannot corrupt the recorded status.
import { SpanStatusCode, type Tracer } from "@opentelemetry/api";
import type { SpanHandle, TracingPort } from "../kasmina/ports.js";

export function otelTracing(tracer: Tracer): TracingPort {
  return {
    startSpan(name, attributes): SpanHandle {
      const span = tracer.startSpan(name, attributes === undefined ? {} : { attributes: { ...attributes } });
      let ended = false;
      return {
        setAttribute: (key, value) => {
          span.setAttribute(key, value);
        },
        recordException: (error) => {
          span.recordException(error);
        },
        end: (outcome) => {
          if (ended) return;
          ended = true;
          span.setStatus(outcome === undefined ? { code: SpanStatusCode.OK } : { code: SpanStatusCode.ERROR, message: outcome.error });
          span.end();
        },
      };
    },
  };
}
