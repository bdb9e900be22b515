//! Vercel function: see `onboarding::routes::flow`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::flow::router).await
}
