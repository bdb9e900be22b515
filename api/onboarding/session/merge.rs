//! Vercel function: `POST /api/onboarding/session/merge`; see `onboarding::routes::merge`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::merge::router).await
}
