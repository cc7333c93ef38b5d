// Every isolation fixture, every variant, replayed hook call by hook call through
// IsolationSession.observe (the in-process observer), checking the snapshot after every event.

import { describe, expect, it } from "vitest";
import { IsolationSession } from "../../src/isolation/index.js";
import {
  RecordedSampler,
  applyControl,
  expectSnapshot,
  loadIsolationFixtures,
  projectedKeys,
  samplesOf,
} from "./fixtures.js";

const fixtures = loadIsolationFixtures();

describe("isolation fixtures through the observer", () => {
  it("finds all ten scenarios", () => {
    expect(fixtures.map((f) => f.scenario)).toHaveLength(10);
  });

  for (const fixture of fixtures) {
    for (const variant of fixture.variants) {
      it(`${fixture.scenario} / ${variant.id}`, () => {
        const sampler = new RecordedSampler(variant);
        const session = new IsolationSession({
          threshold: variant.threshold,
          projectionSamples: samplesOf(variant),
          sampler,
        });
        session.open();
        expect(variant.expected).toHaveLength(fixture.events.length);
        fixture.events.forEach((event, i) => {
          if (event.op === "backward") {
            for (const call of event.hook_calls) {
              const grad = Float32Array.from(event.grads[call.param]);
              session.observe(call.role, call.param, grad);
            }
          } else {
            applyControl(session, event);
          }
          expectSnapshot(session, variant.expected[i], `event ${i} (${event.op})`);
        });
        // Indices are drawn once per parameter and kept across reset/close/open.
        expect([...sampler.calls].sort()).toEqual(projectedKeys(variant));
      });
    }
  }
});
