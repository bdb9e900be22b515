// The proxy redirects /onboarding to the step the backend names; this shows
// only when it could not ask (the backend unreachable).
export default function OnboardingIndex() {
  return <p role="alert">The onboarding service is unavailable. Try again in a moment.</p>;
}
