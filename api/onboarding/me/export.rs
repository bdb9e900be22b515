//! Vercel function: `GET /api/onboarding/me/export`; see `onboarding::routes::me`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::me::export_router).await
}
