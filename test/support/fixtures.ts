// Golden recordings live in test/fixtures (byte-identical copies of the shared ones), so a fresh
// clone needs nothing beside it; KASMINA_FIXTURES_DIR points at another copy. Read, never written.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { repoRoot } from "../../src/repo-root.js";

export function fixturesDir(): string {
  const dir = process.env["KASMINA_FIXTURES_DIR"] ?? resolve(repoRoot(), "test", "fixtures");
  if (!existsSync(join(dir, "signing"))) throw new Error(`golden fixtures not found at ${dir} (set KASMINA_FIXTURES_DIR)`);
  return dir;
}
