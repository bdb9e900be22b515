import type { ReactNode } from "react";
import { cookies } from "next/headers";
import { readToken, TOKEN_COOKIE } from "../lib/auth";
import { SignOut } from "../components/SignOut";
import "./styles.css";

export const metadata = { title: "Onboarding wizard example" };

export default async function RootLayout({ children }: { children: ReactNode }) {
  const claims = readToken((await cookies()).get(TOKEN_COOKIE)?.value);
  return (
    <html lang="en">
      <body>
        <header>
          <a href="/">Acme app</a>
          <nav>
            {claims === undefined ? (
              <a href="/sign-in">Sign in</a>
            ) : (
              <>
                <span data-testid="signed-in-as">Signed in as {claims.sub}</span>
                {claims.org_id !== undefined && <a href="/admin">Admin</a>}
                <SignOut />
              </>
            )}
          </nav>
        </header>
        <main>{children}</main>
      </body>
    </html>
  );
}
