import { describe, expect, it } from "vitest";
import { BlueprintCatalog, CatalogError, parseCatalog } from "../../src/infra/blueprint-catalog.js";

describe("BlueprintCatalog", () => {
  it("has BP001 built in, with its artifact, parameters and nominal latency", () => {
    const catalog = BlueprintCatalog.builtin();
    const { kernel, latencyMs } = catalog.fetchKernel("BP001");
    expect(kernel.blueprintId).toBe("BP001");
    expect(kernel.artifactRef).toMatch(/BP001/);
    expect(kernel.parameters.length).toBeGreaterThan(0);
    expect(kernel.parameters.every((p) => p.trainable && p.elementBytes === 4)).toBe(true);
    expect(latencyMs).toBe(1);
  });

  it("throws for a blueprint it does not hold", () => {
    expect(() => BlueprintCatalog.builtin().fetchKernel("BP404")).toThrowError(new CatalogError("unknown blueprint BP404"));
  });

  it("defaults trainable to true, element_bytes to 4 and the latency to 0", () => {
    const entry = parseCatalog({ blueprints: { X: { artifact_ref: "a", parameters: [{ name: "w", shape: [2, 3] }] } } }).get("X");
    expect(entry?.nominalLatencyMs).toBe(0);
    expect(entry?.kernel.parameters).toEqual([{ name: "w", shape: [2, 3], trainable: true, elementBytes: 4 }]);
  });

  it.each([
    [[], /"blueprints" object/],
    [{ blueprints: { X: 3 } }, /blueprint X: expected an object/],
    [{ blueprints: { X: { parameters: [] } } }, /blueprint X: artifact_ref/],
    [{ blueprints: { X: { artifact_ref: "a", nominal_latency_ms: -1 } } }, /nominal_latency_ms/],
    [{ blueprints: { X: { artifact_ref: "a", parameters: {} } } }, /parameters must be an array/],
    [{ blueprints: { X: { artifact_ref: "a", parameters: [{ shape: [1] }] } } }, /#0: name/],
    [{ blueprints: { X: { artifact_ref: "a", parameters: [{ name: "w", shape: [1.5] }] } } }, /\(w\): shape/],
    [{ blueprints: { X: { artifact_ref: "a", parameters: [{ name: "w", shape: [1], element_bytes: 0 }] } } }, /\(w\): element_bytes/],
  ])("rejects %j with a message that says where", (json, message) => {
    expect(() => parseCatalog(json)).toThrowError(message);
  });
});
