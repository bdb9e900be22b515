//! Vercel function: `GET /api/openapi.json` (`vercel.json` rewrites that path
//! here, since a function's path is its file's).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::openapi::router).await
}
