//! Every route as one AWS Lambda function, behind API Gateway, a function URL
//! or an ALB: `cargo build --release --features lambda --bin lambda`.
//! Configured by the same environment variables as the Vercel functions.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    onboarding::http::lambda::run(|| onboarding::routes::all().merge(onboarding::openapi::router()))
        .await
}
