//! Vercel function: `GET /api/health`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::health::router).await
}
