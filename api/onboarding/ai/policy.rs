//! Vercel function: see `onboarding::routes::ai_policy`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::ai_policy::router).await
}
