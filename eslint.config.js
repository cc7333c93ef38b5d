// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  // Generated code is regenerated, never edited, so it is never linted either.
  { ignores: ["dist/**", "generated/**", "node_modules/**", "coverage/**", "examples/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      // KAS-H1-003: Leyline types have exactly one import path, src/leyline.ts.
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/generated/esper/leyline/**", "**/leyline_pb*", "**/*.proto"],
              message: "Import Leyline types from src/leyline.ts only (one import path, KAS-H1-003).",
            },
          ],
        },
      ],
    },
  },
  {
    // DESIGN §1: the domain layers take ports; infrastructure (grpc, OTel, Redis, SQLite, src/infra)
    // is wired in by the composition root (src/app.ts, src/main.ts).
    files: ["src/kasmina/**", "src/isolation/**", "src/prefetch/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/generated/esper/leyline/**", "**/leyline_pb*", "**/*.proto"],
              message: "Import Leyline types from src/leyline.ts only (one import path, KAS-H1-003).",
            },
            {
              group: ["**/infra/**", "better-sqlite3", "ioredis", "@grpc/*", "@opentelemetry/*"],
              message: "Domain layers take ports; infrastructure is built in src/app.ts (DESIGN §1).",
            },
          ],
        },
      ],
    },
  },
  {
    // The single re-export point for Leyline types.
    files: ["src/leyline.ts"],
    rules: { "no-restricted-imports": "off" },
  },
  {
    files: ["eslint.config.js"],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // Plain JavaScript run by Node (the bench load client's worker thread).
    files: ["**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { Buffer: "readonly", performance: "readonly", process: "readonly" } },
  },
);
