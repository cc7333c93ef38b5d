// Golden fixtures live in ../shared/fixtures beside the checkout; they are read, never written.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { repoRoot } from "../../src/repo-root.js";

export function fixturesDir(): string {
  const dir = process.env["KASMINA_FIXTURES_DIR"] ?? resolve(repoRoot(), "..", "shared", "fixtures");
  if (!existsSync(join(dir, "README.md"))) throw new Error(`golden fixtures not found at ${dir} (set KASMINA_FIXTURES_DIR)`);
  return dir;
}
