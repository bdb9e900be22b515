//! Vercel function: `POST /api/webhooks/clerk`; see `onboarding::routes::webhooks`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::webhooks::clerk_router).await
}
