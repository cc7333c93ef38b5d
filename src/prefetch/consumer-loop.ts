// A supervised read loop over one BusConsumer. A failed round (transport down, handler threw) is
// reported and retried with backoff instead of killing the loop, so a Redis outage heals by
// itself; a consumer that ends on its own while the loop should run is reported as an exit.
import { CONSUMER_BLOCK_MS, toError, type BusConsumer, type MessageHandler } from "./bus.js";

export interface LoopBackoff {
  /** First retry delay after a failed round (default 100 ms). */
  initialMs: number;
  /** Cap of the doubling delay (default 5000 ms). */
  maxMs: number;
}

export const DEFAULT_LOOP_BACKOFF: LoopBackoff = { initialMs: 100, maxMs: 5000 };

export interface LoopEvents {
  /** A round failed; called for every failed round. */
  onFailure(error: Error): void;
  /** The first successful round after one or more failures. */
  onRecovered(): void;
  /** The loop ended while it should still run: `error` if it crashed, else its consumer closed. */
  onExit(error: Error | undefined): void;
}

export class ConsumerLoop {
  private stopping = false;
  private running: Promise<void> | undefined;
  private wakeSleep: (() => void) | undefined;

  constructor(
    readonly name: string,
    private readonly consumer: BusConsumer,
    private readonly handler: MessageHandler,
    private readonly events: LoopEvents,
    private readonly backoff: LoopBackoff = DEFAULT_LOOP_BACKOFF,
    private readonly blockMs: number = CONSUMER_BLOCK_MS,
  ) {}

  start(): void {
    // The catch makes a crash of the loop itself (a bug) an exit report, never an unhandled rejection.
    this.running ??= this.run().catch((error: unknown) => {
      if (!this.stopping) this.events.onExit(toError(error));
    });
  }

  /** Stops deliberately: no failure or exit is reported from here on. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeSleep?.();
    await this.consumer.close();
    await this.running;
  }

  private async run(): Promise<void> {
    let delay = this.backoff.initialMs;
    let failing = false;
    while (!this.stopping) {
      let result;
      try {
        result = await this.consumer.poll(this.handler, this.blockMs);
      } catch (error) {
        if (this.stopping) return;
        failing = true;
        this.events.onFailure(toError(error));
        await this.sleep(delay);
        delay = Math.min(delay * 2, this.backoff.maxMs);
        continue;
      }
      if (result === "closed") {
        if (!this.stopping) this.events.onExit(undefined);
        return;
      }
      if (failing) {
        failing = false;
        delay = this.backoff.initialMs;
        this.events.onRecovered();
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleep = done;
    }).finally(() => {
      this.wakeSleep = undefined;
    });
  }
}
