// The browser's client: relative URLs, so every call goes through the proxy
// (same origin: cookies travel, no CORS), which adds the provider's token.
import { createOnboardingClient } from "@onboarding/client";

export const client = createOnboardingClient({
  baseUrl: typeof window === "undefined" ? (process.env.ONBOARDING_API ?? "http://127.0.0.1:3001") : "",
});
