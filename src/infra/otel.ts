// OpenTelemetry bootstrap. Metric readers are chosen by environment: a Prometheus endpoint when
// KASMINA_PROMETHEUS_PORT is set, OTLP when OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT is set, none by
// default. Spans go to OTLP when an endpoint is set. Inner layers see only the ports.
import { NodeSDK } from "@opentelemetry/sdk-node";
import { PeriodicExportingMetricReader, type MetricReader } from "@opentelemetry/sdk-metrics";
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { metrics, trace, type Meter, type Tracer } from "@opentelemetry/api";

export interface OtelHandle {
  meter: Meter;
  tracer: Tracer;
  /** Human-readable list of what is exported, for the start-up log. */
  exporters: string[];
  shutdown(): Promise<void>;
}

type Env = Readonly<Record<string, string | undefined>>;

export function startOtel(options: { env: Env; prometheusPort: number | undefined; version: string }): OtelHandle {
  const { env } = options;
  const readers: MetricReader[] = [];
  const spanProcessors: SpanProcessor[] = [];
  const exporters: string[] = [];
  if (options.prometheusPort !== undefined) {
    readers.push(new PrometheusExporter({ port: options.prometheusPort, host: env["KASMINA_HOST"] ?? "127.0.0.1" }));
    exporters.push(`prometheus :${options.prometheusPort}/metrics`);
  }
  const otlp = env["OTEL_EXPORTER_OTLP_ENDPOINT"];
  if (otlp !== undefined || env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] !== undefined) {
    readers.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter() }));
    exporters.push("otlp metrics");
  }
  if (otlp !== undefined || env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] !== undefined) {
    spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
    exporters.push("otlp traces");
  }
  // An explicit (possibly empty) list keeps NodeSDK from defaulting to an OTLP exporter on localhost.
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ "service.name": env["OTEL_SERVICE_NAME"] ?? "kasmina", "service.version": options.version }),
    metricReaders: readers,
    spanProcessors,
    instrumentations: [],
  });
  sdk.start();
  return {
    meter: metrics.getMeter("kasmina", options.version),
    tracer: trace.getTracer("kasmina", options.version),
    exporters,
    shutdown: () => sdk.shutdown(),
  };
}
