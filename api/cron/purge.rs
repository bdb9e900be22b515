//! Vercel function: `GET /api/cron/purge`, the nightly retention run (see
//! `onboarding::routes::purge`; scheduled by `crons` in `vercel.json`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::purge::router).await
}
