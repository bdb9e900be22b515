// The stand-in identity provider: an HS256 JWT signed with the backend's
// AUTH_JWT_SECRET (README: Authentication; the dev server's default is the
// value in .env.example). A real app gets its token from Clerk, Supabase…
import { createHmac } from "node:crypto";

/** The HttpOnly cookie holding the token; the proxy sends it as Bearer. */
export const TOKEN_COOKIE = "demo_token";

const DEV_SECRET = "dev-only-onboarding-jwt-secret-0123456789abcdef";

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

/** A token for `userId`: `sub` is the user id, `exp` is required by the backend. */
export function signToken(userId: string, lifetimeSeconds = 3600): string {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = base64url(JSON.stringify({ sub: userId, iat: now, exp: now + lifetimeSeconds }));
  const secret = process.env.AUTH_JWT_SECRET ?? DEV_SECRET;
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}
