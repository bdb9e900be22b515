import { createOnboardingClient } from "@onboarding/client";

// In the browser: the page's own origin, through proxy.ts. On the server: the backend.
export const client = createOnboardingClient({
  baseUrl: typeof window === "undefined" ? (process.env.ONBOARDING_API ?? "http://127.0.0.1:3001") : "",
});
