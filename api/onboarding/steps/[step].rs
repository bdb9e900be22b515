//! Vercel function: `GET`/`PUT /api/onboarding/steps/{step}` (the segment
//! arrives as `?step=`); see `onboarding::routes::steps`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::steps::router).await
}
