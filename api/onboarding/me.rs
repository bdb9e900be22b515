//! Vercel function: `DELETE /api/onboarding/me`; see `onboarding::routes::me`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::me::erase_router).await
}
