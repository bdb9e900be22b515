// Next 16 proxy (formerly middleware.ts): forwards the browser's
// /api/onboarding/* calls to the backend with the provider's token as
// Bearer, starts the anonymous session once, and sends each page request
// where the visitor's onboarding stands.
import { cookieCredential, createOnboardingProxy } from "@onboarding/client/next";
import { TOKEN_COOKIE } from "./lib/auth";

export const proxy = createOnboardingProxy({
  apiUrl: process.env.ONBOARDING_API ?? "http://127.0.0.1:3001",
  wizardPath: "/onboarding",
  // Pages anyone may open whatever their onboarding state.
  publicPaths: ["/sign-in"],
  signInPath: "/sign-in",
  // The stand-in provider's HttpOnly cookie; with Clerk: cookieCredential("__session").
  credential: cookieCredential(TOKEN_COOKIE),
  credentialCookie: TOKEN_COOKIE,
  // The backend's TRUSTED_PROXY_SECRET: its per-IP limits then count each visitor, not this proxy.
  proxySecret: process.env.ONBOARDING_PROXY_SECRET,
});

export const config = {
  // Everything but Next's assets and files with an extension (PROXY_MATCHER).
  matcher: ["/((?!_next/static|_next/image|_next/data|favicon.ico|.*\\.[a-zA-Z0-9]+$).*)"],
};
