// The one import path for Leyline types (KAS-H1-003). ESLint forbids importing the generated module
// from anywhere else, so the codebase cannot grow a second set of contract types.
export * from "../generated/esper/leyline/v1/leyline.js";
export { Timestamp } from "../generated/google/protobuf/timestamp.js";
