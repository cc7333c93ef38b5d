// Chooses the reduction backend at start-up (KASMINA_ISOLATION_BACKEND).
//
// auto: tensorflow-gpu when a GPU is visible and it loads, else js. Among CPU options auto takes
// the fastest, which measured as js: the reduction is memory-bound, and bench/isolation.ts on this
// project's 2-core machine put the js loop at 0.7-0.9 of the machine's read bandwidth (8-8.6 GB/s,
// one read of every byte), tfjs-wasm at 0.4 (4.2-4.8 GB/s: it first copies each chunk into the wasm
// heap, then reads it again to square and sum) and tfjs's cpu kernels at 0.1. tfjs-node
// ("tensorflow") also copies every chunk into a TF tensor before reducing it, so it cannot beat a
// loop that reads each byte once; it is used only when asked for explicitly. (It could not be
// installed here to measure; revisit if a machine with libtensorflow shows otherwise.)

import { readdirSync } from "node:fs";
import { jsBackend } from "./js-backend.js";
import type { BackendLog, BackendPreference, ReductionBackend } from "./reduction-backend.js";
import { loadTfjsBackend, type TfjsBackendKind } from "./tfjs-backend.js";

export interface SelectBackendOptions {
  /** Default: gpuVisible(). */
  readonly gpuVisible?: () => boolean;
  /** Default: loadTfjsBackend. Injected by tests. */
  readonly load?: (kind: TfjsBackendKind) => Promise<ReductionBackend>;
}

/** An NVIDIA device node is present and CUDA_VISIBLE_DEVICES does not hide every device. */
export function gpuVisible(env: NodeJS.ProcessEnv = process.env, devDir = "/dev"): boolean {
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined && (visible.trim() === "" || visible.trim() === "-1")) return false;
  try {
    return readdirSync(devDir).some((name) => /^nvidia\d+$/.test(name));
  } catch {
    return false;
  }
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message.split("\n")[0] : String(err);
}

/**
 * Returns a loaded backend. An explicit preference that cannot load rejects with the reason (the
 * server fails start-up with it); auto logs one line per candidate that failed and falls back.
 */
export async function selectBackend(
  preference: BackendPreference,
  log: BackendLog,
  options: SelectBackendOptions = {},
): Promise<ReductionBackend> {
  const load = options.load ?? ((kind: TfjsBackendKind) => loadTfjsBackend(kind));
  if (preference === "js") return jsBackend;
  if (preference !== "auto") {
    try {
      return await load(preference);
    } catch (err) {
      throw new Error(`isolation backend "${preference}" is not available: ${reason(err)}`, { cause: err });
    }
  }

  if ((options.gpuVisible ?? gpuVisible)()) {
    try {
      return await load("tensorflow-gpu");
    } catch (err) {
      log(`isolation backend "tensorflow-gpu" unavailable, falling back to js: ${reason(err)}`);
    }
  }
  return jsBackend;
}
