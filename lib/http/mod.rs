//! What every route shares, as HTTP: the [`context::WizardRequest`] extractor
//! and the others ([`extract`]), the one error response ([`error`]), replay
//! by `Idempotency-Key` ([`idempotency`]), the write rate limit
//! ([`rate_limit`]), the cron secret of scheduled requests ([`cron`]),
//! request ids, timing and logs ([`observe`]), the two middlewares as
//! tower layers ([`middleware`]), body limits,
//! CORS ([`cors`]) and caching headers, and the way a function binary runs its router
//! (on Vercel, or on AWS Lambda with the `lambda` feature). Below it is the
//! domain, which knows nothing of this.

pub mod admit;
pub mod background;
pub mod context;
pub mod cors;
pub mod cron;
pub mod error;
pub mod extract;
pub mod idempotency;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod middleware;
pub mod observe;
pub mod outbox;
pub mod rate_limit;
pub mod request_id;
pub mod vercel;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;

use crate::config::Settings;
use crate::http::error::ApiError;
use crate::http::middleware::MiddlewareLayer;
use crate::monitoring;
use crate::settings::Profile;
use crate::state::AppState;

/// Wraps the routes of one function (or all of them, in the dev server) with
/// the layers every response needs, and binds the shared state.
pub fn app(state: AppState, routes: Router<AppState>) -> Router {
    let body_limit = state.settings().http.body_limit_bytes;
    let cors = cors::for_origins(&state.settings().http.allowed_origins);
    // One composed layer, outermost first: axum boxes each `Router::layer`
    // separately and clones and re-boxes every one on each request.
    let layers = tower::ServiceBuilder::new()
        // Outside the others, so `Server-Timing` and the log line count the
        // time spent verifying credentials and checking rate limits too, and
        // a panic anywhere inside is logged as the 500 it is answered with.
        .layer(MiddlewareLayer(observe::Observe(state.spans().cloned())))
        .layer(cors)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(MiddlewareLayer(admit::Admit(state.clone())));
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(layers)
        .with_state(state)
}

/// A `200` with a JSON body already written (`Status::to_json`), with the
/// `Content-Type` that `Json` sets.
pub fn written_json(body: String) -> axum::response::Response {
    let mut response = axum::body::Body::from(body).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn not_found() -> impl IntoResponse {
    ApiError::NotFound("no route matches this path".into())
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::MethodNotAllowed
}

/// Runs one Vercel function: builds the shared state once per process (cold
/// start), mounts `routes`, and serves through `vercel_runtime`, which listens
/// on `VERCEL_DEV_PORT`.
pub async fn run_function(routes: fn() -> Router<AppState>) -> Result<(), vercel_runtime::Error> {
    monitoring::init();
    let settings = Settings::from_env(Profile::Deployed)?;
    let state = AppState::build(settings)?;
    vercel_runtime::run(vercel::VercelFunction::new(app(state, routes()))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_a_500_problem_with_the_request_id() {
        let settings = Settings::from_lookup(&|_: &str| None, Profile::Local).unwrap();
        let state = AppState::build(settings).unwrap();
        let routes = Router::new().route(
            "/boom",
            get(|| async {
                panic!("boom");
                #[allow(unreachable_code)]
                ""
            }),
        );
        let response = app(state, routes)
            .oneshot(
                Request::get("/boom")
                    .header("x-request-id", "panic-test-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(response.headers()["x-request-id"], "panic-test-1");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["requestId"], "panic-test-1");
        assert!(!problem.to_string().contains("boom"));
    }
}
