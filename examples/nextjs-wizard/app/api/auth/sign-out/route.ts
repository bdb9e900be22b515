import { NextResponse, type NextRequest } from "next/server";
import { TOKEN_COOKIE } from "../../../../lib/auth";

export async function POST(_request: NextRequest) {
  const response = NextResponse.json({ signedOut: true });
  response.cookies.set(TOKEN_COOKIE, "", { path: "/", maxAge: 0 });
  return response;
}
