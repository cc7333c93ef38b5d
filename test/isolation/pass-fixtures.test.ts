// Every isolation fixture and variant replayed through the chunked pass API (one pass per backward
// event), with several chunkings, on every backend this run can load. tfjs backends are forced onto
// the device path (minDeviceElements 0) and to batch in tiny batches, so the row-sum and batching
// code is what gets checked, not the JS fallback for small arrays.

import { beforeAll, describe, expect, it } from "vitest";
import {
  IsolationSession,
  jsBackend,
  loadTfjsBackend,
  type ReductionBackend,
} from "../../src/isolation/index.js";
import { CHUNKINGS, chunksFor } from "./chunking.js";
import {
  RecordedSampler,
  applyControl,
  expectSnapshot,
  loadIsolationFixtures,
  projectedKeys,
  samplesOf,
} from "./fixtures.js";

const fixtures = loadIsolationFixtures();
const backends: Record<string, ReductionBackend> = { js: jsBackend };

beforeAll(async () => {
  // wasm must load here (it ships inside the package); tfjs-cpu is tfjs's own JS kernels.
  backends.wasm = await loadTfjsBackend("wasm", { minDeviceElements: 0, batchBytes: 256 });
  backends["tfjs-cpu"] = await loadTfjsBackend("tfjs-cpu", { minDeviceElements: 0, batchBytes: 0 });
});

describe.each(["js", "wasm", "tfjs-cpu"])("isolation fixtures through chunked passes on %s", (backendName) => {
  for (const fixture of fixtures) {
    for (const variant of fixture.variants) {
      it.each(CHUNKINGS)(`${fixture.scenario} / ${variant.id} / %s`, (chunking) => {
        const backend = backends[backendName];
        const sampler = new RecordedSampler(variant);
        const session = new IsolationSession({
          threshold: variant.threshold,
          projectionSamples: samplesOf(variant),
          sampler,
          backend,
        });
        session.open();
        fixture.events.forEach((event, i) => {
          if (event.op === "backward") {
            const pass = session.beginPass();
            const gradients = event.hook_calls.map((c) => ({
              side: c.role,
              key: c.param,
              values: Float32Array.from(event.grads[c.param]),
            }));
            const chunks = chunksFor(gradients, chunking, 1000 + i);
            for (const chunk of chunks) pass.feed(chunk);
            const result = pass.commit();
            expect(result.applied).toBe(session.collecting);
            expect(result.chunks).toBe(chunks.length);
            expect(result.elements).toBe(gradients.reduce((n, g) => n + g.values.length, 0));
          } else {
            applyControl(session, event);
          }
          expectSnapshot(session, variant.expected[i], `event ${i} (${event.op})`);
        });
        expect([...sampler.calls].sort()).toEqual(projectedKeys(variant));
        expect(session.snapshot().backend).toBe(backendName);
      });
    }
  }
});
