// The app itself: the proxy lets only visitors who completed onboarding in.
export default function Home() {
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
