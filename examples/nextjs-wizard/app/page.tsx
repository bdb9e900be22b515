// The app itself: the proxy lets only visitors who completed onboarding in,
// and marks the request when it could not ask the backend (then it renders
// the page instead of redirecting, so a backend outage never loops).
import { headers } from "next/headers";

export default async function Home() {
  if ((await headers()).get("x-onboarding-status") !== null) {
    return (
      <p className="error" role="alert" data-testid="unavailable">
        The onboarding service is unavailable right now; reload in a moment.
      </p>
    );
  }
  return (
    <section>
      <h1>Welcome to the app</h1>
      <p data-testid="app-home">Your onboarding is complete.</p>
      <p>
        <a href="/admin">Organization admin</a>
      </p>
    </section>
  );
}
