// The app itself. The proxy sends anyone who has not completed onboarding to
// the wizard, so only a completed user sees this page.
export default function AppPage() {
  return (
    <main>
      <h1 data-testid="app-home">Welcome to the app</h1>
      <p>Onboarding is complete.</p>
    </main>
  );
}
