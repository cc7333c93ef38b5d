// Ports the domain layer depends on. Implementations live in src/infra (OTel, Redis, catalog),
// so kasmina/ and isolation/ never import grpc, OTel or Redis.

/** Monotonic seconds (TTLs, breakers, nonces, embargo) and wall-clock milliseconds (freshness, timestamps). */
export interface Clock {
  monotonic(): number;
  wallMs(): number;
}

export const systemClock: Clock = {
  monotonic: () => performance.now() / 1000,
  wallMs: () => Date.now(),
};

/** A clock tests move by hand; never sleeps. */
export class FakeClock implements Clock {
  constructor(
    public mono = 0,
    public wall = 1_790_000_000_000,
  ) {}
  monotonic(): number {
    return this.mono;
  }
  wallMs(): number {
    return this.wall;
  }
  advance(seconds: number): void {
    this.mono += seconds;
    this.wall += seconds * 1000;
  }
}

export type MetricAttributes = Readonly<Record<string, string>>;

export interface Counter {
  add(value: number, attributes?: MetricAttributes): void;
}

export interface Histogram {
  record(value: number, attributes?: MetricAttributes): void;
}

/** One value an observable gauge reports at collection time. */
export interface GaugeObservation {
  readonly value: number;
  readonly attributes?: MetricAttributes;
}

/** The metrics sink of the domain layer; instrument names are binding (DESIGN §2). */
export interface MetricsPort {
  counter(name: string, description: string, unit?: string): Counter;
  histogram(name: string, description: string, unit?: string): Histogram;
  /**
   * A gauge read when the exporter collects (a scrape), not pushed: `observe` is called then and
   * its observations are the gauge's whole current value. Optional so that sinks which only count
   * (test recorders) need not implement it; the composition root registers gauges where it exists.
   */
  observableGauge?(name: string, description: string, observe: () => Iterable<GaugeObservation>, unit?: string): void;
}

const noopCounter: Counter = { add: () => undefined };
const noopHistogram: Histogram = { record: () => undefined };

export const noopMetrics: MetricsPort = {
  counter: () => noopCounter,
  histogram: () => noopHistogram,
  observableGauge: () => undefined,
};

/** A span as the domain sees it: ended exactly once, OK or ERROR with a reason. */
export interface SpanHandle {
  setAttribute(key: string, value: string | number | boolean): void;
  recordException(error: Error): void;
  end(outcome?: { error: string }): void;
}

/** The tracing sink of the domain layer; span names are binding (DESIGN §2). */
export interface TracingPort {
  startSpan(name: string, attributes?: Readonly<Record<string, string | number | boolean>>): SpanHandle;
}

const noopSpan: SpanHandle = { setAttribute: () => undefined, recordException: () => undefined, end: () => undefined };
export const noopTracing: TracingPort = { startSpan: () => noopSpan };
