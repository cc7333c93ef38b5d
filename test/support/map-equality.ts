// Leyline maps decode as Map (ts-proto useMapType, so any key is data); assertions written as
// object literals compare a Map entry by entry with the literal's own keys.
import type { Tester, TesterContext } from "@vitest/expect";
import { expect } from "vitest";

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !(v instanceof Map) && Object.getPrototypeOf(v) === Object.prototype;

expect.addEqualityTesters([
  // The testers in force are passed on, so toMatchObject's subset rule still applies inside.
  function mapEqualsObject(this: TesterContext, a: unknown, b: unknown, testers: Tester[]) {
    if (a instanceof Map && isPlainObject(b)) return this.equals(Object.fromEntries(a), b, testers);
    if (isPlainObject(a) && b instanceof Map) return this.equals(a, Object.fromEntries(b), testers);
    return undefined;
  },
]);
