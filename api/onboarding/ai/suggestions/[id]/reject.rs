//! Vercel function: `POST /api/onboarding/ai/suggestions/{id}/reject` (the id
//! arrives as `?id=`); see `onboarding::routes::ai`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::ai::reject_router).await
}
