// The proxy redirects /onboarding to the step the backend names; this page
// only shows when it could not ask (backend down).
export default function OnboardingIndex() {
  return <p role="alert">The onboarding service is unavailable right now; reload in a moment.</p>;
}
