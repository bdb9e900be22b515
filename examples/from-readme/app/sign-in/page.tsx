"use client";
import { useRouter } from "next/navigation";
import { useState, type FormEvent } from "react";
import { ProblemError } from "@onboarding/client";
import { client } from "../../lib/client";
import { signIn } from "./actions";

function safeNext(value: string | null): string {
  return value !== null && value.startsWith("/") && !value.startsWith("//") ? value : "/onboarding";
}

export default function SignInPage() {
  const router = useRouter();
  const [userId, setUserId] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await signIn(userId);
      // The anonymous drafts move to the account (and the session cookie is cleared).
      const merged = await client.mergeSession();
      console.info("merged", merged.merged);
      router.push(safeNext(new URLSearchParams(window.location.search).get("next")));
    } catch (caught) {
      setError(caught instanceof ProblemError ? caught.detail : String(caught));
      setBusy(false);
    }
  };

  return (
    <main>
      <h1>Sign in</h1>
      <form onSubmit={submit}>
        <label>
          User id <input name="userId" value={userId} onChange={(event) => setUserId(event.target.value)} required />
        </label>{" "}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      {error !== undefined && <p role="alert">{error}</p>}
    </main>
  );
}
