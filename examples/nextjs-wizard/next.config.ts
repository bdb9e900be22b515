import type { NextConfig } from "next";
import path from "node:path";

const config: NextConfig = {
  // This example lives inside the backend's repository; its own directory is the root.
  turbopack: { root: path.resolve(".") },
  outputFileTracingRoot: path.resolve("."),
};

export default config;
