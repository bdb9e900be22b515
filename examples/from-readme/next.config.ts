import type { NextConfig } from "next";

const config: NextConfig = {
  // This app is its own project inside the backend's repository.
  turbopack: { root: import.meta.dirname },
};

export default config;
