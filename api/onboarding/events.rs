//! Vercel function: see `onboarding::routes::events`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::events::router).await
}
