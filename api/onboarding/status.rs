//! Vercel function: see `onboarding::routes::status`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::status::router).await
}
