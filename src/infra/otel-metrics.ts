// MetricsPort over an OpenTelemetry Meter. Instruments are created once per name and reused:
// the OTel API tolerates duplicate registration but warns and allocates on every call.

import type { Meter } from "@opentelemetry/api";
import type { Counter, GaugeObservation, Histogram, MetricsPort } from "../kasmina/ports.js";

/** Histogram bucket bounds for durations in seconds: 50 µs to 10 s. */
export const SECONDS_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class OtelMetrics implements MetricsPort {
  private readonly counters = new Map<string, Counter>();
  private readonly histograms = new Map<string, Histogram>();
  private readonly gauges = new Map<string, () => Iterable<GaugeObservation>>();

  constructor(private readonly meter: Meter) {}

  counter(name: string, description: string, unit?: string): Counter {
    let counter = this.counters.get(name);
    if (counter === undefined) {
      counter = this.meter.createCounter(name, { description, ...(unit === undefined ? {} : { unit }) });
      this.counters.set(name, counter);
    }
    return counter;
  }

  histogram(name: string, description: string, unit?: string): Histogram {
    let histogram = this.histograms.get(name);
    if (histogram === undefined) {
      histogram = this.meter.createHistogram(name, {
        description,
        ...(unit === undefined ? {} : { unit }),
        // The SDK's default buckets (0, 5, 10, … 10000) suit milliseconds; in seconds every call would
        // land in the first bucket and a dashboard's p99 would read "under 5 s".
        ...(unit === "s" ? { advice: { explicitBucketBoundaries: SECONDS_BUCKETS } } : {}),
      });
      this.histograms.set(name, histogram);
    }
    return histogram;
  }

  observableGauge(name: string, description: string, observe: () => Iterable<GaugeObservation>, unit?: string): void {
    // One instrument and one callback per name; registering again replaces the source (an app
    // rebuilt on the same sink), instead of reporting every series twice.
    const known = this.gauges.has(name);
    this.gauges.set(name, observe);
    if (known) return;
    const gauge = this.meter.createObservableGauge(name, { description, ...(unit === undefined ? {} : { unit }) });
    gauge.addCallback((result) => {
      for (const { value, attributes } of this.gauges.get(name)?.() ?? []) result.observe(value, attributes);
    });
  }
}
