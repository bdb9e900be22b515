"use server";
import { cookies } from "next/headers";
import { signToken, TOKEN_COOKIE } from "../../lib/auth";

export async function signIn(userId: string): Promise<void> {
  const id = userId.trim();
  if (id === "") throw new Error("a user id is required");
  const jar = await cookies();
  jar.set(TOKEN_COOKIE, signToken(id), { httpOnly: true, sameSite: "lax", path: "/", maxAge: 3600 });
}
