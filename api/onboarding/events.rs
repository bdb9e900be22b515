//! Vercel function: see `onboarding::routes::events`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::events::router).await
}
