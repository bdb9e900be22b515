//! Vercel function: `GET /api/cron/deliver`, the scheduled outbox delivery
//! (see `onboarding::routes::deliver`; scheduled by `crons` in `vercel.json`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vercel_runtime::Error> {
    onboarding::http::run_function(onboarding::routes::deliver::router).await
}
