"use client";
// The stand-in provider's sign-in, then the session merge: the anonymous
// drafts move to the account (the more recently saved answer wins per step).
import { useSearchParams } from "next/navigation";
import { Suspense, useState } from "react";
import { ProblemError } from "@onboarding/client";
import { client } from "../../lib/client";

function SignInForm() {
  const params = useSearchParams();
  const next = params.get("next") ?? "/onboarding";
  const [userId, setUserId] = useState("");
  const [message, setMessage] = useState<string>();

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const signedIn = await fetch("/api/auth/sign-in", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId }),
    });
    if (!signedIn.ok) {
      setMessage("Could not sign in: use letters, digits, _ . -");
      return;
    }
    try {
      await client.mergeSession();
    } catch (caught) {
      // No anonymous session to merge (400 on backends before the merge fix).
      if (!(caught instanceof ProblemError) || caught.status !== 400) {
        setMessage(caught instanceof ProblemError ? caught.detail : String(caught));
        return;
      }
    }
    // A full navigation: the proxy sees the new token and routes by status.
    window.location.assign(next.startsWith("/") ? next : "/onboarding");
  };

  return (
    <form onSubmit={submit}>
      <p className="muted">
        Stand-in provider for local development: any user id signs in (an HS256 token signed with the backend&apos;s
        AUTH_JWT_SECRET).
      </p>
      <div className="field">
        <label htmlFor="user-id">User id</label>
        <input id="user-id" name="userId" type="text" value={userId} onChange={(e) => setUserId(e.target.value)} />
      </div>
      {message && (
        <p className="error" role="alert">
          {message}
        </p>
      )}
      <button type="submit">Sign in</button>
    </form>
  );
}

export default function SignInPage() {
  return (
    <section>
      <h1>Sign in</h1>
      <Suspense>
        <SignInForm />
      </Suspense>
    </section>
  );
}
