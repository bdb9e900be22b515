import { cookieCredential, createOnboardingProxy } from "@onboarding/client/next";
import { TOKEN_COOKIE } from "./lib/auth";

export const proxy = createOnboardingProxy({
  apiUrl: process.env.ONBOARDING_API ?? "http://127.0.0.1:3001",
  wizardPath: "/onboarding",
  publicPaths: ["/sign-in"],
  signInPath: "/sign-in",
  credential: cookieCredential(TOKEN_COOKIE),
  credentialCookie: TOKEN_COOKIE,
  proxySecret: process.env.ONBOARDING_PROXY_SECRET,
});

export const config = {
  // PROXY_MATCHER of @onboarding/client/next, as a literal (Next reads it statically).
  matcher: ["/((?!_next/static|_next/image|_next/data|favicon.ico|.*\\.[a-zA-Z0-9]+$).*)"],
};
