//! Serving a router on AWS Lambda through `lambda_http` (cargo feature
//! `lambda`): API Gateway HTTP and REST APIs, Lambda function URLs and ALB
//! target groups. `lambda_http` turns each event into an `http::Request` and
//! the response back into the event's response shape (`Set-Cookie` headers
//! into the HTTP API's `cookies`, binary bodies into base64); this adapter does
//! what Vercel's edge would otherwise have done for the routes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use tower::{Service, ServiceExt};

use crate::config::Settings;
use crate::http::background::Background;
use crate::http::rate_limit::ClientAddress;
use crate::monitoring;
use crate::settings::Profile;
use crate::state::AppState;

/// Runs `routes` as one Lambda function: builds the shared state once per
/// execution environment (cold start) and serves every invocation with it.
pub async fn run(routes: fn() -> Router<AppState>) -> Result<(), lambda_http::Error> {
    monitoring::init();
    let settings = Settings::from_env(Profile::Deployed)?;
    let state = AppState::build(settings)?;
    lambda_http::run(LambdaFunction::new(super::app(state, routes()))).await
}

/// The tower service `lambda_http::run` drives, one invocation at a time.
#[derive(Clone)]
pub struct LambdaFunction {
    router: Router,
}

impl LambdaFunction {
    pub fn new(router: Router) -> Self {
        Self { router }
    }
}

impl Service<lambda_http::Request> for LambdaFunction {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: lambda_http::Request) -> Self::Future {
        let router = self.router.clone();
        Box::pin(async move {
            let origin = Origin::of(&request);
            let (mut parts, body) = request.into_parts();
            if let Some(uri) = without_stage(&parts.uri, origin.stage.as_deref()) {
                parts.uri = uri;
            }
            if let Some(address) = origin.client_ip.as_deref().and_then(|ip| ip.parse().ok()) {
                parts.extensions.insert(ClientAddress(address));
            }
            let background = Background::awaited();
            parts.extensions.insert(background.clone());
            // API Gateway has already buffered the whole body (at most 10 MB);
            // the routes' own limit still applies.
            let body = Body::from(body.to_vec());
            let response = router
                .oneshot(axum::http::Request::from_parts(parts, body))
                .await?;
            // Lambda freezes the process once this returns.
            background.settle().await;
            Ok(response)
        })
    }
}

/// What the event says about where the request came from.
struct Origin {
    /// The API Gateway stage, when the event names one other than `$default`.
    stage: Option<String>,
    /// The client address as API Gateway or the load balancer saw it.
    client_ip: Option<String>,
}

impl Origin {
    fn of(request: &lambda_http::Request) -> Self {
        let (stage, client_ip) = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => {
                (context.stage.clone(), context.http.source_ip.clone())
            }
            Some(RequestContext::ApiGatewayV1(context)) => {
                (context.stage.clone(), context.identity.source_ip.clone())
            }
            // An ALB appends the address it accepted the connection from to
            // `X-Forwarded-For`; entries before it are the client's to write.
            Some(RequestContext::Alb(_)) => (None, last_forwarded_for(request.headers())),
            _ => (None, None),
        };
        Self {
            stage: stage.filter(|stage| stage != "$default"),
            client_ip,
        }
    }
}

fn last_forwarded_for(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    Some(value.rsplit(',').next()?.trim().to_string()).filter(|ip| !ip.is_empty())
}

/// `lambda_http` puts a named stage in front of the path (`/prod/api/health`);
/// the routes live at `/api/…` whatever the stage is called.
fn without_stage(uri: &Uri, stage: Option<&str>) -> Option<Uri> {
    let stage = stage?;
    let rest = uri.path().strip_prefix('/')?.strip_prefix(stage)?;
    if !rest.starts_with('/') {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_named_stage_is_taken_off_the_path_and_the_query_is_kept() {
        let uri: Uri = "https://example.com/prod/api/onboarding/steps/profile?step=profile"
            .parse()
            .unwrap();
        assert_eq!(
            without_stage(&uri, Some("prod")).unwrap().to_string(),
            "https://example.com/api/onboarding/steps/profile?step=profile"
        );
        assert!(without_stage(&uri, None).is_none());
        // Only a whole first segment is a stage.
        let uri: Uri = "/production/api/health".parse().unwrap();
        assert!(without_stage(&uri, Some("prod")).is_none());
    }

    #[test]
    fn behind_an_alb_the_last_forwarded_address_is_the_client() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 198.51.100.7"),
        );
        assert_eq!(
            last_forwarded_for(&headers).as_deref(),
            Some("198.51.100.7")
        );
    }
}
