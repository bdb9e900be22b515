// A stand-in sign-in provider for local development: it signs HS256 JWTs
// with the backend's AUTH_JWT_SECRET (AUTH_PROVIDER=hs256) and keeps them in
// an HttpOnly cookie. The proxy sends that cookie's token to the backend as
// `Authorization: Bearer` (see proxy.ts). With a real provider this file
// goes away: Clerk, Supabase and Auth.js notes are in README.md.
import { createHmac } from "node:crypto";

/** The cookie holding the stand-in provider's token. */
export const TOKEN_COOKIE = "demo_token";

// The dev secret of the backend's .env.example; never use it deployed.
const secret = process.env.AUTH_JWT_SECRET ?? "dev-only-onboarding-jwt-secret-0123456789abcdef";

function base64url(input: string | Buffer): string {
  return Buffer.from(input).toString("base64url");
}

export interface Claims {
  sub: string;
  org_id?: string;
  org_role?: string;
  email?: string;
}

/** A token the backend accepts: `sub`, `iat`, `exp` and the active organization. */
export function signToken(claims: Claims, ttlSeconds = 3600): string {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = base64url(JSON.stringify({ ...claims, iat: now, exp: now + ttlSeconds }));
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

/** The claims of a token this provider signed (its signature is checked). */
export function readToken(token: string | undefined): Claims | undefined {
  if (token === undefined) return undefined;
  const [header, payload, signature] = token.split(".");
  if (header === undefined || payload === undefined || signature === undefined) return undefined;
  const expected = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  if (expected !== signature) return undefined;
  const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  if (typeof claims !== "object" || claims === null || !("sub" in claims) || typeof claims.sub !== "string") {
    return undefined;
  }
  const org = "org_id" in claims && typeof claims.org_id === "string" ? claims.org_id : undefined;
  return org === undefined ? { sub: claims.sub } : { sub: claims.sub, org_id: org };
}

/** The token cookie's attributes; `Secure` whenever the app is served over https. */
export function cookieOptions(url: string) {
  return { httpOnly: true, sameSite: "lax" as const, path: "/", secure: url.startsWith("https:"), maxAge: 3600 };
}
