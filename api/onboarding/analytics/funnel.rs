//! Vercel function: `GET /api/onboarding/analytics/funnel`; see `onboarding::routes::analytics`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::analytics::router).await
}
