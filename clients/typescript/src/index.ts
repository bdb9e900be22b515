export * from "./client.js";
export * from "./http.js";
export * from "./problem.js";
export type { components, operations, paths } from "./openapi.js";
export * from "./flags.js";
