import { describe, expect, it } from "vitest";
import { NextRequest } from "next/server.js";
import {
  clerkOnboardingClaim,
  cookieCredential,
  createOnboardingProxy,
  isAssetPath,
  PROXY_MATCHER,
  supabaseOnboardingClaim,
} from "../src/next.js";

type Handler = (request: Request) => Response;

/** A stand-in backend for the proxy's own calls (unit test; the e2e test uses the real one). */
function backend(handler: Handler) {
  const calls: Request[] = [];
  const fetchImpl: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    calls.push(request);
    return handler(request);
  };
  return { calls, fetchImpl };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

const status = (state: string, redirectTo: string) =>
  json(200, { state, redirectTo, authenticated: false });

function page(path: string, cookie?: string) {
  return new NextRequest(`http://localhost:3000${path}`, { headers: cookie ? { cookie } : {} });
}

const options = (fetchImpl: typeof fetch) => ({
  apiUrl: "http://api.test",
  publicPaths: ["/sign-in"],
  signInPath: "/sign-in",
  credential: cookieCredential("demo_token"),
  credentialCookie: "demo_token",
  fetch: fetchImpl,
});

describe("matcher", () => {
  it("leaves Next's assets and static files alone", () => {
    const matcher = new RegExp(`^${PROXY_MATCHER}$`);
    for (const path of ["/_next/static/chunks/a.js", "/_next/image", "/favicon.ico", "/logo.svg", "/robots.txt"]) {
      expect(matcher.test(path), path).toBe(false);
      expect(isAssetPath(path) || path === "/_next/image", path).toBe(true);
    }
    for (const path of ["/", "/onboarding/profile", "/api/onboarding/status", "/admin"]) {
      expect(matcher.test(path), path).toBe(true);
    }
  });
});

describe("API forwarding", () => {
  it("rewrites /api/onboarding/* to the backend with the provider cookie as Bearer", async () => {
    const { calls, fetchImpl } = backend(() => json(500, {}));
    const proxy = createOnboardingProxy(options(fetchImpl));
    const response = await proxy(page("/api/onboarding/steps/profile?x=1", "demo_token=abc; onboarding_session=s1"));
    expect(response.headers.get("x-middleware-rewrite")).toBe("http://api.test/api/onboarding/steps/profile?x=1");
    expect(response.headers.get("x-middleware-request-authorization")).toBe("Bearer abc");
    expect(calls).toHaveLength(0);
  });

  it("drops an empty Authorization header instead of forwarding it", async () => {
    const { fetchImpl } = backend(() => json(500, {}));
    const proxy = createOnboardingProxy({ ...options(fetchImpl), credential: () => undefined });
    const request = new NextRequest("http://localhost:3000/api/onboarding/status", { headers: { authorization: "" } });
    const response = await proxy(request);
    expect(response.headers.get("x-middleware-request-authorization")).toBeNull();
    expect(response.headers.get("x-middleware-override-headers") ?? "").not.toContain("authorization");
  });
});

describe("the visitor's address", () => {
  const visitor = (path: string, headers: Record<string, string>) =>
    new NextRequest(`http://localhost:3000${path}`, { headers });

  it("is named to the backend with the proxy secret, on the proxy's own calls and on rewrites", async () => {
    const { calls, fetchImpl } = backend((request) =>
      request.method === "POST"
        ? json(201, {}, { "set-cookie": "onboarding_session=s9; Path=/; HttpOnly" })
        : status("not_started", "/onboarding/profile"),
    );
    const proxy = createOnboardingProxy({ ...options(fetchImpl), proxySecret: "proxy-secret-0123456789" });
    await proxy(visitor("/onboarding/profile", { "x-forwarded-for": "203.0.113.9, 10.0.0.1" }));
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.headers.get("x-onboarding-client-ip")).toBe("203.0.113.9");
      expect(call.headers.get("x-onboarding-proxy-secret")).toBe("proxy-secret-0123456789");
    }
    const rewrite = await proxy(
      visitor("/api/onboarding/status", { "x-real-ip": "198.51.100.4", "x-onboarding-client-ip": "1.2.3.4" }),
    );
    expect(rewrite.headers.get("x-middleware-request-x-onboarding-client-ip")).toBe("198.51.100.4");
  });

  it("is never named without the secret, nor as the browser claims it", async () => {
    const { calls, fetchImpl } = backend(() => status("not_started", "/onboarding/profile"));
    const proxy = createOnboardingProxy(options(fetchImpl));
    await proxy(visitor("/onboarding/profile", { "x-forwarded-for": "203.0.113.9", cookie: "onboarding_session=s1" }));
    for (const call of calls) {
      expect(call.headers.get("x-onboarding-client-ip")).toBeNull();
      expect(call.headers.get("x-onboarding-proxy-secret")).toBeNull();
    }
    const rewrite = await proxy(
      visitor("/api/onboarding/status", { "x-onboarding-client-ip": "1.2.3.4", "x-onboarding-proxy-secret": "guess" }),
    );
    expect(rewrite.headers.get("x-middleware-request-x-onboarding-client-ip")).toBeNull();
    expect(rewrite.headers.get("x-middleware-request-x-onboarding-proxy-secret")).toBeNull();
  });
});

/** An unsigned JWT with `claims` (the proxy reads, never verifies, it). */
const jwt = (claims: unknown) =>
  `${btoa(JSON.stringify({ alg: "HS256" }))}.${btoa(JSON.stringify(claims)).replace(/=+$/, "")}.signature`;

describe("the provider's onboarding claim", () => {
  it("is read from Clerk's and Supabase's shapes, and is absent otherwise", () => {
    expect(clerkOnboardingClaim(jwt({ metadata: { onboardingComplete: true } }))).toBe(true);
    expect(clerkOnboardingClaim(jwt({ metadata: {} }))).toBeUndefined();
    expect(supabaseOnboardingClaim(jwt({ app_metadata: { onboarding_complete: false } }))).toBe(false);
    expect(supabaseOnboardingClaim("not a token")).toBeUndefined();
  });

  it("spares the backend on app pages when it says done, and only then", async () => {
    const { calls, fetchImpl } = backend(() => json(200, { state: "completed", redirectTo: "/", authenticated: true }));
    const proxy = createOnboardingProxy({ ...options(fetchImpl), completedClaim: clerkOnboardingClaim });
    const done = jwt({ sub: "u1", metadata: { onboardingComplete: true } });
    const response = await proxy(page("/dashboard", `demo_token=${done}`));
    expect(response.headers.get("x-middleware-next")).toBe("1");
    expect(calls).toHaveLength(0);
    // Without the claim (not yet synced), the backend is asked.
    await proxy(page("/dashboard", `demo_token=${jwt({ sub: "u1" })}`));
    expect(calls.map((call) => new URL(call.url).pathname)).toEqual(["/api/onboarding/status"]);
    // Inside the wizard the backend always decides.
    await proxy(page("/onboarding/profile", `demo_token=${done}`));
    expect(calls).toHaveLength(2);
  });
});

describe("pages", () => {
  it("starts the anonymous session once and redirects to the step status names", async () => {
    const { calls, fetchImpl } = backend((request) =>
      request.method === "POST"
        ? json(201, { session: "new" }, { "set-cookie": "onboarding_session=new.sig; Max-Age=60; Path=/; HttpOnly" })
        : status("not_started", "/onboarding/profile"),
    );
    const proxy = createOnboardingProxy(options(fetchImpl));
    const response = await proxy(page("/onboarding"));
    expect(response.status).toBe(307);
    expect(response.headers.get("location")).toBe("http://localhost:3000/onboarding/profile");
    expect(response.headers.get("set-cookie")).toContain("onboarding_session=new.sig");
    expect(calls.map((c) => `${c.method} ${new URL(c.url).pathname}`)).toEqual([
      "POST /api/onboarding/session",
      "GET /api/onboarding/status",
    ]);
    expect(calls[1]?.headers.get("cookie")).toBe("onboarding_session=new.sig");
  });

  it("does not start a session when one is presented, nor redirect within the wizard", async () => {
    const { calls, fetchImpl } = backend(() => status("in_progress", "/onboarding/goals"));
    const proxy = createOnboardingProxy(options(fetchImpl));
    const response = await proxy(page("/onboarding/profile", "onboarding_session=s1"));
    expect(response.status).toBe(200);
    expect(response.headers.get("x-middleware-next")).toBe("1");
    expect(calls).toHaveLength(1);
  });

  it("sends an unfinished visitor from the app to the wizard, and a finished one out of it", async () => {
    const unfinished = createOnboardingProxy(options(backend(() => status("in_progress", "/onboarding/goals")).fetchImpl));
    expect((await unfinished(page("/admin", "onboarding_session=s1"))).headers.get("location")).toBe(
      "http://localhost:3000/onboarding/goals",
    );
    const finished = createOnboardingProxy(options(backend(() => status("completed", "/")).fetchImpl));
    expect((await finished(page("/onboarding/profile", "demo_token=t"))).headers.get("location")).toBe(
      "http://localhost:3000/",
    );
    expect((await finished(page("/", "demo_token=t"))).status).toBe(200);
  });

  it("replaces a session cookie the backend rejects, without a redirect", async () => {
    const { calls, fetchImpl } = backend((request) => {
      const cookie = request.headers.get("cookie") ?? "";
      if (request.method === "POST") {
        return json(201, { session: "fresh" }, { "set-cookie": "onboarding_session=fresh.sig; Path=/; HttpOnly" });
      }
      return cookie.includes("stale") ? json(401, { type: "x", detail: "bad session" }) : status("not_started", "/onboarding/profile");
    });
    const proxy = createOnboardingProxy(options(fetchImpl));
    const response = await proxy(page("/onboarding/profile", "onboarding_session=stale.sig"));
    expect(response.status).toBe(200);
    expect(response.headers.get("set-cookie")).toContain("onboarding_session=fresh.sig");
    expect(calls.map((c) => c.method)).toEqual(["GET", "POST", "GET"]);
  });

  it("clears the session cookie when no new session can be made, and does not loop", async () => {
    const { fetchImpl } = backend(() => json(401, { type: "x", detail: "bad" }));
    const proxy = createOnboardingProxy(options(fetchImpl));
    const response = await proxy(page("/onboarding/profile", "onboarding_session=stale"));
    expect(response.status).toBe(200);
    expect(response.headers.get("set-cookie")).toMatch(/onboarding_session=;.*Max-Age=0/i);
  });

  it("sends a rejected provider token to sign-in once, never from sign-in itself", async () => {
    const { fetchImpl } = backend(() => json(401, { type: "x", detail: "expired" }));
    const proxy = createOnboardingProxy(options(fetchImpl));
    const response = await proxy(page("/onboarding/goals", "demo_token=expired"));
    expect(response.headers.get("location")).toBe("http://localhost:3000/sign-in?next=%2Fonboarding%2Fgoals");
    expect(response.headers.get("set-cookie")).toMatch(/demo_token=;.*Max-Age=0/i);
    expect((await proxy(page("/sign-in", "demo_token=expired"))).status).toBe(200);
  });

  it("renders the page on a 503 or an unreachable backend instead of redirecting", async () => {
    const down = createOnboardingProxy(options(backend(() => json(503, {}, { "retry-after": "2" })).fetchImpl));
    const response = await down(page("/admin", "onboarding_session=s1"));
    expect(response.status).toBe(200);
    expect(response.headers.get("x-middleware-request-x-onboarding-status")).toBe("unavailable");
    const unreachable = createOnboardingProxy(
      options(async () => {
        throw new TypeError("fetch failed");
      }),
    );
    expect((await unreachable(page("/", "onboarding_session=s1"))).status).toBe(200);
  });

  it("asks again once when a connection fails, so a stale cookie is still replaced", async () => {
    let resets = 1;
    const { calls, fetchImpl } = backend((request) => {
      if (request.method === "POST") {
        return json(201, { session: "fresh" }, { "set-cookie": "onboarding_session=fresh.sig; Path=/; HttpOnly" });
      }
      if (resets > 0) {
        resets -= 1;
        throw new TypeError("fetch failed", { cause: new Error("other side closed") });
      }
      const cookie = request.headers.get("cookie") ?? "";
      return cookie.includes("stale") ? json(401, { type: "x", detail: "bad session" }) : status("not_started", "/onboarding/profile");
    });
    const proxy = createOnboardingProxy(options(fetchImpl));
    const response = await proxy(page("/onboarding/profile", "onboarding_session=stale.sig"));
    expect(response.headers.get("set-cookie")).toContain("onboarding_session=fresh.sig");
    expect(response.headers.get("x-middleware-request-x-onboarding-status")).toBeNull();
    expect(calls.map((c) => c.method)).toEqual(["GET", "GET", "POST", "GET"]);
  });

  it("does not ask again after a timeout", async () => {
    const { calls, fetchImpl } = backend(() => {
      throw new DOMException("The operation was aborted due to timeout", "TimeoutError");
    });
    const proxy = createOnboardingProxy(options(fetchImpl));
    const response = await proxy(page("/onboarding/profile", "onboarding_session=s1"));
    expect(response.headers.get("x-middleware-request-x-onboarding-status")).toBe("unavailable");
    expect(calls).toHaveLength(1);
  });
});
