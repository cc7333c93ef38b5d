// MetricsPort over an OpenTelemetry Meter. Instruments are created once per name and reused:
// the OTel API tolerates duplicate registration but warns and allocates on every call.

import type { Meter } from "@opentelemetry/api";
import type { Counter, Histogram, MetricsPort } from "../kasmina/ports.js";

export class OtelMetrics implements MetricsPort {
  private readonly counters = new Map<string, Counter>();
  private readonly histograms = new Map<string, Histogram>();

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
      histogram = this.meter.createHistogram(name, { description, ...(unit === undefined ? {} : { unit }) });
      this.histograms.set(name, histogram);
    }
    return histogram;
  }
}
