//! Vercel function: `POST /api/onboarding/ai/suggestions/{id}/accept` (the id
//! arrives as `?id=`); see `onboarding::routes::ai`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::ai::accept_router).await
}
