// Makes the organization onboarding created the token's active one, as
// Clerk's `setActive({ organization })` would: the backend takes the active
// organization from the token (`org_id`) and checks membership itself.
import { NextResponse, type NextRequest } from "next/server";
import { cookieOptions, readToken, signToken, TOKEN_COOKIE } from "../../../../lib/auth";

export async function POST(request: NextRequest) {
  const claims = readToken(request.cookies.get(TOKEN_COOKIE)?.value);
  if (claims === undefined) return NextResponse.json({ error: "sign in first" }, { status: 401 });
  const body: unknown = await request.json().catch(() => undefined);
  const organizationId =
    typeof body === "object" && body !== null && "organizationId" in body && typeof body.organizationId === "string"
      ? body.organizationId
      : undefined;
  if (organizationId === undefined || organizationId.length === 0 || organizationId.length > 200) {
    return NextResponse.json({ error: "organizationId is required" }, { status: 400 });
  }
  const response = NextResponse.json({ organizationId });
  response.cookies.set(
    TOKEN_COOKIE,
    signToken({ sub: claims.sub, org_id: organizationId, org_role: "org:admin" }),
    cookieOptions(request.url),
  );
  return response;
}
