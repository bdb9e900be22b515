//! Vercel function: see `onboarding::routes::complete`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::complete::router).await
}
