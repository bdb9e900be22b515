// The Next.js side (Next 16 `proxy.ts`, formerly `middleware.ts`): forwards
// `/api/onboarding/*` to the backend with the provider's credential as
// Bearer, starts the anonymous session once, and sends each page request
// where the visitor's onboarding stands.
import { NextResponse, type NextRequest } from "next/server.js";

/** The onboarding session cookie the backend sets (HttpOnly). */
export const SESSION_COOKIE = "onboarding_session";

/**
 * The matcher to copy into `proxy.ts` (Next reads `config` statically, so it
 * cannot be imported): every path but Next's assets and files with an
 * extension.
 */
export const PROXY_MATCHER = "/((?!_next/static|_next/image|_next/data|favicon.ico|.*\\.[a-zA-Z0-9]+$).*)";

export interface OnboardingProxyOptions {
  /** The backend's origin, e.g. `process.env.ONBOARDING_API` (`http://127.0.0.1:3001`). */
  apiUrl: string;
  /** Base path of the wizard pages (the backend's `ONBOARDING_WIZARD_PATH`, default `/onboarding`). */
  wizardPath?: string;
  /** Pages anyone may open at any stage (sign-in, legal pages…); prefixes. */
  publicPaths?: string[];
  /**
   * The signed-in user's provider token, sent to the backend as
   * `Authorization: Bearer`. Use `cookieCredential("__session")` for Clerk,
   * or read your provider's session; `undefined` when signed out.
   */
  credential?: (request: NextRequest) => string | undefined | Promise<string | undefined>;
  /** Where to send a signed-in user whose token the backend rejects (must be public). */
  signInPath?: string;
  /** Name of the provider cookie to delete when the backend rejects its token. */
  credentialCookie?: string;
  /** Timeout of the proxy's own calls to the backend (default 3000 ms). */
  timeoutMs?: number;
  /**
   * The backend's `TRUSTED_PROXY_SECRET` (e.g. `process.env.ONBOARDING_PROXY_SECRET`):
   * with it, every request to the backend names the visitor's address, so
   * the backend's per-IP limits count visitors, not this proxy. Server-side
   * only; never sent to the browser.
   */
  proxySecret?: string;
  /** The visitor's address (default: the first of `x-forwarded-for`, else `x-real-ip`, as Vercel sets them). */
  clientIp?: (request: NextRequest) => string | undefined;
  /**
   * Reads, from the signed-in user's token, the claim the backend's
   * identity-provider sync sets on completion (`clerkOnboardingClaim`,
   * `supabaseOnboardingClaim`). When it says `true`, app pages are served
   * without asking the backend (`GET /status`): one call fewer per
   * navigation. Absent or `false`: the backend decides, as without it. A
   * routing hint only: the token is not verified here, and every API call
   * still is, by the backend.
   */
  completedClaim?: (token: string) => boolean | undefined;
  fetch?: typeof fetch;
}

/** The headers in which the proxy names the visitor to the backend. */
export const PROXY_CLIENT_IP_HEADER = "x-onboarding-client-ip";
export const PROXY_SECRET_HEADER = "x-onboarding-proxy-secret";

/** The visitor's address as the platform in front of Next reports it. */
export function forwardedClientIp(request: NextRequest): string | undefined {
  const forwarded = request.headers.get("x-forwarded-for")?.split(",")[0]?.trim();
  return forwarded || request.headers.get("x-real-ip")?.trim() || undefined;
}

/** The payload of a JWT, unverified (for routing hints only), or undefined. */
export function unverifiedClaims(token: string): Record<string, unknown> | undefined {
  const payload = token.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const claims: unknown = JSON.parse(json);
    return typeof claims === "object" && claims !== null && !Array.isArray(claims)
      ? (claims as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function member(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

/**
 * Clerk: `metadata.onboardingComplete`, once the session token is customized
 * with `{"metadata": "{{user.public_metadata}}"}` (the backend sets
 * `public_metadata.onboardingComplete` with `IDP_SYNC=on`).
 */
export function clerkOnboardingClaim(token: string): boolean | undefined {
  const value = member(member(unverifiedClaims(token), "metadata"), "onboardingComplete");
  return typeof value === "boolean" ? value : undefined;
}

/** Supabase: `app_metadata.onboarding_complete` (set by the backend with `IDP_SYNC=on`). */
export function supabaseOnboardingClaim(token: string): boolean | undefined {
  const value = member(member(unverifiedClaims(token), "app_metadata"), "onboarding_complete");
  return typeof value === "boolean" ? value : undefined;
}

/** A credential read from a cookie (the provider's JWT). */
export function cookieCredential(name: string): (request: NextRequest) => string | undefined {
  return (request) => {
    const value = request.cookies.get(name)?.value;
    return value === undefined || value === "" ? undefined : value;
  };
}

/** Whether `pathname` is one of Next's assets or a static file (never guarded). */
export function isAssetPath(pathname: string): boolean {
  return pathname.startsWith("/_next/") || /\.[a-zA-Z0-9]+$/.test(pathname);
}

/** Whether a fetch failed by its `AbortSignal.timeout`, not by the connection. */
function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
}

function under(pathname: string, base: string): boolean {
  return base === "/" ? pathname === "/" : pathname === base || pathname.startsWith(`${base}/`);
}

/** The `name=value` of a `Set-Cookie` line. */
function cookieValue(setCookie: string, name: string): string | undefined {
  const first = setCookie.split(";")[0] ?? "";
  const eq = first.indexOf("=");
  if (eq < 0 || first.slice(0, eq).trim() !== name) return undefined;
  return first.slice(eq + 1).trim();
}

function cookieHeader(request: NextRequest, session: string | null | undefined): string {
  const pairs = request.cookies
    .getAll()
    .filter((cookie) => cookie.name !== SESSION_COOKIE)
    .map((cookie) => `${cookie.name}=${cookie.value}`);
  if (session) pairs.push(`${SESSION_COOKIE}=${session}`);
  return pairs.join("; ");
}

/** What the proxy learned from `GET /status`. */
export type ProxyStatus =
  | { kind: "ok"; state: string; redirectTo: string; authenticated: boolean }
  | { kind: "rejected"; status: 401 }
  | { kind: "unavailable"; status: number };

/**
 * Builds the proxy: `export const proxy = createOnboardingProxy({...})` in
 * `proxy.ts`, with `export const config = { matcher: [PROXY_MATCHER literal] }`.
 */
export function createOnboardingProxy(options: OnboardingProxyOptions) {
  const apiUrl = options.apiUrl.replace(/\/+$/, "");
  const wizardPath = options.wizardPath ?? "/onboarding";
  const publicPaths = options.publicPaths ?? [];
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
  const timeoutMs = options.timeoutMs ?? 3000;
  const clientIp = options.clientIp ?? forwardedClientIp;

  /** Names the visitor to the backend when the secret is configured; a browser's own such headers never pass. */
  function nameVisitor(headers: Headers, request: NextRequest): void {
    headers.delete(PROXY_SECRET_HEADER);
    headers.delete(PROXY_CLIENT_IP_HEADER);
    const ip = clientIp(request);
    if (options.proxySecret !== undefined && ip !== undefined) {
      headers.set(PROXY_SECRET_HEADER, options.proxySecret);
      headers.set(PROXY_CLIENT_IP_HEADER, ip);
    }
  }

  async function call(
    request: NextRequest,
    path: string,
    init: { method?: string; cookie: string; token: string | undefined },
  ) {
    const headers = new Headers({ accept: "application/json" });
    if (init.cookie !== "") headers.set("cookie", init.cookie);
    if (init.token !== undefined) headers.set("authorization", `Bearer ${init.token}`);
    nameVisitor(headers, request);
    return doFetch(`${apiUrl}${path}`, {
      method: init.method ?? "GET",
      headers,
      cache: "no-store",
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
  }

  async function readStatus(request: NextRequest, cookie: string, token: string | undefined): Promise<ProxyStatus> {
    const ask = () => call(request, "/api/onboarding/status", { cookie, token });
    let response: Response;
    try {
      // A connection the backend closed while it sat idle in the pool fails
      // at once (ECONNRESET, "other side closed"): one more try on a fresh
      // one, since a visitor whose stale cookie is then left unreplaced
      // would meet a 401 on the page. A timeout is not tried again.
      response = await ask().catch((error: unknown) => {
        if (isTimeout(error)) throw error;
        return ask();
      });
    } catch {
      return { kind: "unavailable", status: 0 };
    }
    if (response.status === 401) return { kind: "rejected", status: 401 };
    if (!response.ok) return { kind: "unavailable", status: response.status };
    const body: unknown = await response.json().catch(() => undefined);
    if (
      typeof body === "object" &&
      body !== null &&
      "state" in body &&
      typeof body.state === "string" &&
      "redirectTo" in body &&
      typeof body.redirectTo === "string"
    ) {
      const authenticated = "authenticated" in body && body.authenticated === true;
      return { kind: "ok", state: body.state, redirectTo: body.redirectTo, authenticated };
    }
    return { kind: "unavailable", status: response.status };
  }

  /** `POST /session`: the new session's cookie line, or undefined. */
  async function startSession(request: NextRequest, cookie: string): Promise<string | undefined> {
    try {
      const response = await call(request, "/api/onboarding/session", { method: "POST", cookie, token: undefined });
      if (response.status !== 200 && response.status !== 201) return undefined;
      return response.headers.getSetCookie().find((line) => cookieValue(line, SESSION_COOKIE) !== undefined);
    } catch {
      return undefined;
    }
  }

  return async function proxy(request: NextRequest): Promise<NextResponse> {
    const { pathname, search } = request.nextUrl;
    const token = options.credential ? await options.credential(request) : undefined;

    // The browser's API calls: same origin for the page, forwarded with the
    // provider's credential as Bearer (the backend does not read its cookie).
    if (pathname.startsWith("/api/onboarding/") || pathname === "/api/onboarding") {
      const headers = new Headers(request.headers);
      if (headers.get("authorization") === "") headers.delete("authorization");
      if (token !== undefined && !headers.has("authorization")) {
        headers.set("authorization", `Bearer ${token}`);
      }
      nameVisitor(headers, request);
      return NextResponse.rewrite(new URL(`${pathname}${search}`, `${apiUrl}/`), { request: { headers } });
    }
    if (isAssetPath(pathname) || pathname.startsWith("/api/")) return NextResponse.next();
    if (publicPaths.some((base) => under(pathname, base))) return NextResponse.next();

    const inWizard = under(pathname, wizardPath);
    // The provider's token says onboarding is done: an app page needs no question to the backend.
    if (!inWizard && token !== undefined && options.completedClaim?.(token) === true) {
      return NextResponse.next();
    }
    let session = request.cookies.get(SESSION_COOKIE)?.value;
    const setCookies: string[] = [];
    let clearSession = false;

    // Anonymous visitors get their session once, on their first wizard page.
    if (token === undefined && session === undefined && inWizard) {
      const line = await startSession(request, cookieHeader(request, undefined));
      if (line !== undefined) {
        setCookies.push(line);
        session = cookieValue(line, SESSION_COOKIE);
      }
    }

    let status = await readStatus(request, cookieHeader(request, session), token);
    if (status.kind === "rejected" && token === undefined && session !== undefined) {
      // A session cookie the backend no longer accepts (rotated secret,
      // expired): replace it with a new anonymous session, or drop it.
      const line =
        (await startSession(request, cookieHeader(request, session))) ?? (await startSession(request, cookieHeader(request, undefined)));
      session = line === undefined ? undefined : cookieValue(line, SESSION_COOKIE);
      if (line !== undefined) setCookies.push(line);
      else clearSession = true;
      status = await readStatus(request, cookieHeader(request, session), token);
    }

    const finish = (response: NextResponse): NextResponse => {
      for (const line of setCookies) response.headers.append("set-cookie", line);
      if (clearSession) response.cookies.set(SESSION_COOKIE, "", { maxAge: 0, path: "/" });
      return response;
    };
    const pass = (): NextResponse => {
      const headers = new Headers(request.headers);
      headers.set("cookie", cookieHeader(request, clearSession ? undefined : session));
      // Tells the page the backend could not say where the visitor stands.
      if (status.kind !== "ok") headers.set("x-onboarding-status", status.kind);
      else headers.delete("x-onboarding-status");
      return finish(NextResponse.next({ request: { headers } }));
    };
    const redirect = (to: string): NextResponse => {
      const target = new URL(to, request.url);
      // Never redirect to where we are (no loops).
      if (target.pathname === pathname) return pass();
      return finish(NextResponse.redirect(target, 307));
    };

    if (status.kind === "rejected") {
      if (token !== undefined) {
        // The provider's token is refused (expired, wrong key): sign in again.
        if (options.signInPath !== undefined && !under(pathname, options.signInPath)) {
          const response = redirect(`${options.signInPath}?next=${encodeURIComponent(pathname + search)}`);
          if (options.credentialCookie !== undefined) {
            response.cookies.set(options.credentialCookie, "", { maxAge: 0, path: "/" });
          }
          return response;
        }
      }
      clearSession = clearSession || session !== undefined;
      return pass();
    }
    // Backend down or slow: render the page (it shows the outage), never redirect.
    if (status.kind === "unavailable") return pass();

    if (status.state === "completed") {
      return inWizard ? redirect(status.redirectTo) : pass();
    }
    // Not completed: outside the wizard, go to the step the backend names;
    // inside it, any step may be revisited, but the bare wizard path resolves.
    if (!inWizard || pathname === wizardPath) return redirect(status.redirectTo);
    return pass();
  };
}
