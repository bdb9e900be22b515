//! Serving a router as a Vercel function. Unlike `vercel_runtime`'s own axum
//! layer, this one keeps Vercel's per-invocation state in the request's
//! extensions, so handlers can run work after the response with `wait_until`
//! (the function stays alive until it settles), and it caps the body it
//! buffers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::IntoResponse;
use http_body_util::{BodyExt, Limited};
use tower::{Service, ServiceExt};

use crate::http::background::Background;
use crate::http::error::ApiError;
use crate::http::rate_limit::{ClientAddress, first_address};

/// The largest body buffered before routing; routes apply their own, lower limit.
const HARD_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The client's address as Vercel's edge sets it (named once: a lookup by a
/// `&str` parses the name on every call).
const VERCEL_FORWARDED_FOR: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-vercel-forwarded-for");

/// The tower service `vercel_runtime::run` drives.
#[derive(Clone)]
pub struct VercelFunction {
    router: axum::Router,
}

impl VercelFunction {
    pub fn new(router: axum::Router) -> Self {
        Self { router }
    }
}

type Incoming = hyper::Request<hyper::body::Incoming>;

impl Service<(vercel_runtime::AppState, Incoming)> for VercelFunction {
    type Response = hyper::Response<vercel_runtime::ResponseBody>;
    type Error = vercel_runtime::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (state, request): (vercel_runtime::AppState, Incoming)) -> Self::Future {
        let router = self.router.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let response = match Limited::new(body, HARD_BODY_LIMIT).collect().await {
                Ok(collected) => {
                    parts.extensions.insert(Background::vercel(state));
                    // Vercel's edge overwrites this header: on Vercel it is the client.
                    if let Some(address) = parts
                        .headers
                        .get(VERCEL_FORWARDED_FOR)
                        .and_then(first_address)
                    {
                        parts.extensions.insert(ClientAddress(address));
                    }
                    let request =
                        axum::http::Request::from_parts(parts, Body::from(collected.to_bytes()));
                    match router.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                }
                Err(_) => ApiError::PayloadTooLarge(format!(
                    "the body is larger than {HARD_BODY_LIMIT} bytes"
                ))
                .into_response(),
            };
            into_runtime_response(response).await
        })
    }
}

/// Hands a response to the runtime with its whole body and length, so hyper
/// writes head and body together; only an event stream is streamed.
///
/// `vercel_runtime`'s own conversion streams every `application/json` body
/// through a spawned task and a channel: hyper then writes the head first and
/// the body a moment later, chunked. On a kept-alive connection (the runtime
/// does not set `TCP_NODELAY`) Nagle's algorithm holds that second write until
/// the client acknowledges the first, which Linux delays by up to 40 ms, so
/// every JSON answer took over 40 ms (`scripts/bench`, README: Benchmark).
async fn into_runtime_response(
    response: axum::response::Response,
) -> Result<hyper::Response<vercel_runtime::ResponseBody>, vercel_runtime::Error> {
    let is_event_stream = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if is_event_stream || response.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        return vercel_runtime::axum::StreamingUtils::process_response(response).await;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|error| Box::new(error) as vercel_runtime::Error)?;
    Ok(hyper::Response::from_parts(parts, bytes.into()))
}
