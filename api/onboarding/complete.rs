//! Vercel function: see `onboarding::routes::complete`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::complete::router).await
}
