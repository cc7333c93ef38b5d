// The embedded kernel runtime: a blueprint catalog loaded from JSON (KASMINA_BLUEPRINT_CATALOG) or
// the built-in catalog holding BP001. Each entry names its artifact, checksum, parameters and the
// nominal fetch latency the runtime reports.
import { readFileSync } from "node:fs";
import type { FetchedKernel, Kernel, KernelParameter, KernelRuntime } from "../kasmina/kernel-runtime.js";

export interface CatalogEntry {
  readonly kernel: Kernel;
  readonly nominalLatencyMs: number;
}

export const BUILTIN_CATALOG_JSON = {
  blueprints: {
    BP001: {
      artifact_ref: "builtin://kernels/BP001/residual-adapter-v1",
      checksum: "sha256:0000000000000000000000000000000000000000000000000000000000000001",
      nominal_latency_ms: 1.0,
      parameters: [
        { name: "adapter.down.weight", shape: [16, 64], trainable: true, element_bytes: 4 },
        { name: "adapter.down.bias", shape: [16], trainable: true, element_bytes: 4 },
        { name: "adapter.up.weight", shape: [64, 16], trainable: true, element_bytes: 4 },
        { name: "adapter.up.bias", shape: [64], trainable: true, element_bytes: 4 },
      ],
    },
  },
};

export class CatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CatalogError";
  }
}

function parseParameter(blueprint: string, raw: unknown, index: number): KernelParameter {
  const where = `blueprint ${blueprint} parameter #${index}`;
  if (typeof raw !== "object" || raw === null) throw new CatalogError(`${where}: expected an object`);
  const p = raw as Record<string, unknown>;
  if (typeof p["name"] !== "string" || p["name"] === "") throw new CatalogError(`${where}: name must be a non-empty string`);
  const shape = p["shape"];
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
    throw new CatalogError(`${where} (${p["name"]}): shape must be an array of non-negative integers`);
  }
  const elementBytes = p["element_bytes"] ?? 4;
  if (!Number.isInteger(elementBytes) || (elementBytes as number) <= 0) {
    throw new CatalogError(`${where} (${p["name"]}): element_bytes must be a positive integer`);
  }
  return { name: p["name"], shape: shape as number[], trainable: p["trainable"] !== false, elementBytes: elementBytes as number };
}

export function parseCatalog(json: unknown): Map<string, CatalogEntry> {
  if (typeof json !== "object" || json === null || typeof (json as Record<string, unknown>)["blueprints"] !== "object") {
    throw new CatalogError('catalog must be an object with a "blueprints" object');
  }
  const entries = new Map<string, CatalogEntry>();
  for (const [id, raw] of Object.entries((json as { blueprints: Record<string, unknown> }).blueprints)) {
    if (typeof raw !== "object" || raw === null) throw new CatalogError(`blueprint ${id}: expected an object`);
    const b = raw as Record<string, unknown>;
    if (typeof b["artifact_ref"] !== "string" || b["artifact_ref"] === "") {
      throw new CatalogError(`blueprint ${id}: artifact_ref must be a non-empty string`);
    }
    const latency = b["nominal_latency_ms"] ?? 0;
    if (typeof latency !== "number" || !Number.isFinite(latency) || latency < 0) {
      throw new CatalogError(`blueprint ${id}: nominal_latency_ms must be a non-negative number`);
    }
    const params = b["parameters"] ?? [];
    if (!Array.isArray(params)) throw new CatalogError(`blueprint ${id}: parameters must be an array`);
    entries.set(id, {
      nominalLatencyMs: latency,
      kernel: Object.freeze({
        blueprintId: id,
        artifactRef: b["artifact_ref"],
        checksum: typeof b["checksum"] === "string" ? b["checksum"] : "",
        parameters: Object.freeze(params.map((p, i) => parseParameter(id, p, i))),
      }),
    });
  }
  return entries;
}

export class BlueprintCatalog implements KernelRuntime {
  constructor(private readonly entries: ReadonlyMap<string, CatalogEntry>) {}

  static builtin(): BlueprintCatalog {
    return new BlueprintCatalog(parseCatalog(BUILTIN_CATALOG_JSON));
  }

  static fromFile(path: string): BlueprintCatalog {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, "utf8"));
    } catch (error) {
      throw new CatalogError(`cannot read blueprint catalog ${path}: ${(error as Error).message}`);
    }
    return new BlueprintCatalog(parseCatalog(json));
  }

  lookup(blueprintId: string): CatalogEntry | undefined {
    return this.entries.get(blueprintId);
  }

  get size(): number {
    return this.entries.size;
  }

  fetchKernel(blueprintId: string): FetchedKernel {
    const entry = this.entries.get(blueprintId);
    if (entry === undefined) throw new CatalogError(`unknown blueprint ${blueprintId}`);
    return { kernel: entry.kernel, latencyMs: entry.nominalLatencyMs };
  }
}
