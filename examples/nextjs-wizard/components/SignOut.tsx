"use client";

export function SignOut() {
  return (
    <button
      type="button"
      onClick={async () => {
        await fetch("/api/auth/sign-out", { method: "POST" });
        window.location.assign("/");
      }}
    >
      Sign out
    </button>
  );
}
