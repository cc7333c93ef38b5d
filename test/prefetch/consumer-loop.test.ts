// The supervised read loop: failures are reported and retried, a deliberate stop never is.
import { describe, expect, it } from "vitest";
import type { BusConsumer, PollResult } from "../../src/prefetch/bus.js";
import { ConsumerLoop, type LoopEvents } from "../../src/prefetch/consumer-loop.js";
import { Recorder, withTimeout } from "./helpers.js";

function events() {
  const failures = new Recorder<Error>();
  const recovered = new Recorder<undefined>();
  const exits = new Recorder<Error | undefined>();
  const sink: LoopEvents = { onFailure: failures.fn, onRecovered: () => recovered.fn(undefined), onExit: exits.fn };
  return { failures, recovered, exits, sink };
}

/** A consumer scripted round by round; when the script runs out it waits for close(). */
function scriptedConsumer(script: Array<() => Promise<PollResult>>, rejectOnClose: boolean): BusConsumer & { polls: number } {
  let interrupt: (() => void) | undefined;
  const consumer = {
    stream: "s",
    polls: 0,
    poll: (): Promise<PollResult> => {
      const step = script[consumer.polls];
      consumer.polls += 1;
      if (step !== undefined) return step();
      // Like a Redis read cut off by a disconnect: rejects (or resolves "closed") on close().
      return new Promise<PollResult>((resolve, reject) => {
        interrupt = () => (rejectOnClose ? reject(new Error("Connection is closed.")) : resolve("closed"));
      });
    },
    close: async () => interrupt?.(),
  };
  return consumer;
}

describe("ConsumerLoop", () => {
  it("a read that rejects because stop() closed the consumer is not reported", async () => {
    const { failures, exits, sink } = events();
    const consumer = scriptedConsumer([], true);
    const loop = new ConsumerLoop("ready", consumer, () => undefined, sink);
    loop.start();
    await withTimeout(loop.stop(), 2000, "stop()");
    expect(failures.calls).toHaveLength(0);
    expect(exits.calls).toHaveLength(0);
  });

  it("reports every failed round, retries with backoff and reports recovery once", async () => {
    const { failures, recovered, sink } = events();
    const down = () => Promise.reject(new Error("down"));
    const consumer = scriptedConsumer([down, down, async () => 0, async () => 0], false);
    const loop = new ConsumerLoop("ready", consumer, () => undefined, sink, { initialMs: 1, maxMs: 4 });
    loop.start();
    await recovered.waitFor(1);
    expect(failures.calls.map((error) => error.message)).toEqual(["down", "down"]);
    await loop.stop();
    expect(recovered.calls).toHaveLength(1);
  });

  it("a consumer that ends on its own while running is an exit; a crash of the loop carries its error", async () => {
    const first = events();
    const loop = new ConsumerLoop("ready", scriptedConsumer([async () => "closed"], false), () => undefined, first.sink);
    loop.start();
    expect(await first.exits.waitFor(1)).toBeUndefined();
    await loop.stop();

    const second = events();
    const crash = new Error("bug in the loop");
    // A loop whose event sink itself throws dies; the crash is reported as the exit error.
    const failing: BusConsumer = { stream: "s", poll: () => Promise.reject(new Error("read failed")), close: async () => undefined };
    const dying = new ConsumerLoop("ready", failing, () => undefined, {
      onFailure: () => {
        throw crash;
      },
      onRecovered: () => undefined,
      onExit: second.exits.fn,
    });
    dying.start();
    expect(await second.exits.waitFor(1)).toBe(crash);
    await dying.stop();
  });
});
