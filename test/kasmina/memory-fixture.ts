// Typed loader for the golden recordings under test/fixtures/memory (read-only).

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fixturesDir } from "../support/fixtures.js";

export const MEMORY_FIXTURES_DIR = join(fixturesDir(), "memory");

export interface StatsJson {
  readonly size: number;
  readonly hit_rate: number;
  readonly evictions: number;
}

export interface CacheInternalJson {
  readonly hits: number;
  readonly misses: number;
  readonly entries: ReadonlyArray<readonly [string, number, unknown]>;
}

export interface ManagerInternalJson {
  readonly last_gc_epoch: number;
  readonly gc_counter: number;
}

export interface StepJson {
  readonly i: number;
  readonly clock: number;
  readonly target: string;
  readonly call: string;
  readonly args: { readonly key?: string; readonly value?: unknown; readonly epoch?: number; readonly include_teacher?: boolean };
  readonly returned: unknown;
  readonly size_before: Readonly<Record<string, number>>;
  readonly size_after: Readonly<Record<string, number>>;
  readonly true_evictions: Readonly<Record<string, number>>;
  readonly stats_after: Readonly<Record<string, StatsJson>>;
  readonly internal_after: Readonly<Record<string, CacheInternalJson>> & { readonly manager?: ManagerInternalJson };
  readonly note?: string;
}

export interface TtlCacheSetupJson {
  readonly object: "ttl_cache";
  readonly ttl_seconds: number | null;
  readonly initial_clock: number;
  readonly effective_ttl_seconds: number;
}

export interface ManagerSetupJson {
  readonly object: "memory_manager";
  readonly gc_frequency: number | null;
  readonly effective_gc_frequency: number;
  readonly initial_clock: number;
  readonly kernel_cache: { readonly ttl_seconds: number };
  readonly telemetry_cache: { readonly ttl_seconds: number };
}

export interface MemoryFixture<S> {
  readonly scenario: string;
  readonly setup: S;
  readonly initial_stats: Readonly<Record<string, StatsJson>>;
  readonly steps: readonly StepJson[];
}

export function memoryFixtureNames(prefix: string): string[] {
  return readdirSync(MEMORY_FIXTURES_DIR)
    .filter((name) => name.startsWith(prefix) && name.endsWith(".json"))
    .sort();
}

export function loadMemoryFixture<S>(name: string): MemoryFixture<S> {
  return JSON.parse(readFileSync(join(MEMORY_FIXTURES_DIR, name), "utf8")) as MemoryFixture<S>;
}
