// The stand-in provider's sign-in: any user id, no password (local only).
import { NextResponse, type NextRequest } from "next/server";
import { cookieOptions, signToken, TOKEN_COOKIE } from "../../../../lib/auth";

export async function POST(request: NextRequest) {
  const body: unknown = await request.json().catch(() => undefined);
  const userId =
    typeof body === "object" && body !== null && "userId" in body && typeof body.userId === "string"
      ? body.userId.trim()
      : "";
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(userId)) {
    return NextResponse.json({ error: "a user id of 1-64 letters, digits, _ . -" }, { status: 400 });
  }
  const response = NextResponse.json({ userId });
  // Organization first, as with Clerk organizations: the user's organization
  // exists in the provider before onboarding, and POST /complete creates it
  // in the backend with this id (the user becomes its owner).
  response.cookies.set(TOKEN_COOKIE, signToken({ sub: userId, org_id: `org_${userId}` }), cookieOptions(request.url));
  return response;
}
