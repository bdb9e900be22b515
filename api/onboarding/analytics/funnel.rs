//! Vercel function: `GET /api/onboarding/analytics/funnel`; see `onboarding::routes::analytics`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::analytics::router).await
}
