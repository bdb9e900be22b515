//! Vercel function: `GET`/`PUT /api/onboarding/steps/{step}` (the segment
//! arrives as `?step=`); see `onboarding::routes::steps`.

#[tokio::main]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::steps::router).await
}
