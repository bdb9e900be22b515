//! CORS for the configured wizard origins, applied only to requests that
//! carry an `Origin` header.
//!
//! A browser names the origin of every cross-origin request and preflight;
//! the Next.js server (its middleware reading the status, a route handler
//! proxying the wizard) sends none. `tower_http`'s `Cors` does the same work
//! for both: it builds a header map and the `Vary` list for every request,
//! about ten allocations, most of what the layer costs. Without an `Origin`
//! there is nothing for it to allow, so such a request goes straight to
//! the routes; its answer still says
//! `Vary: origin, access-control-request-method, access-control-request-headers`,
//! as `Cors` would write it, so that no shared cache hands it to a browser
//! whose origin would be answered differently.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{HeaderValue, Method, Request, Response, header};
use futures_util::TryFutureExt;
use futures_util::future::{Either, MapOk};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::SESSION_HEADER;
use crate::http::error::{RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET};
use crate::http::extract::IDEMPOTENCY_KEY;
use crate::http::idempotency::IDEMPOTENT_REPLAYED;
use crate::http::request_id;

/// The `Vary` value `Cors` writes by default, for the answers it is skipped for.
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// CORS for `origins` only, with credentials (cookies and the Authorization
/// header). No origins configured: same-origin only.
pub fn for_origins(origins: &[String]) -> CorsForOrigins {
    let origins: Arc<[HeaderValue]> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    // A predicate over a shared list rather than `AllowOrigin::list`: the
    // layer is cloned for every request with an `Origin`, and a list is
    // cloned with it.
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.contains(origin)
        }))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::IF_MATCH,
            IDEMPOTENCY_KEY,
            request_id::HEADER.clone(),
            SESSION_HEADER,
        ])
        .expose_headers([
            header::ETAG,
            header::CONTENT_DISPOSITION,
            header::RETRY_AFTER,
            request_id::HEADER.clone(),
            IDEMPOTENT_REPLAYED,
            RATELIMIT_LIMIT,
            RATELIMIT_REMAINING,
            RATELIMIT_RESET,
        ])
        .max_age(std::time::Duration::from_secs(600));
    CorsForOrigins(Arc::new(cors))
}

/// The layer of [`for_origins`].
#[derive(Clone)]
pub struct CorsForOrigins(Arc<CorsLayer>);

impl<S> Layer<S> for CorsForOrigins {
    type Service = CorsIfOrigin<S>;

    fn layer(&self, routes: S) -> Self::Service {
        CorsIfOrigin {
            routes,
            cors: self.0.clone(),
        }
    }
}

/// `Cors` around the routes for a request with an `Origin`, the routes
/// alone (and the `Vary` header) for one without. The stack is cloned for
/// every request, so the configuration is shared rather than held: a
/// `CorsLayer` clones its lists with it, and `Cors` is built only for a
/// request that has an `Origin`.
#[derive(Clone)]
pub struct CorsIfOrigin<S> {
    routes: S,
    cors: Arc<CorsLayer>,
}

type WithVary<F, B> = MapOk<F, fn(Response<B>) -> Response<B>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CorsIfOrigin<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<tower_http::cors::ResponseFuture<S::Future>, WithVary<S::Future, ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.routes.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if request.headers().contains_key(header::ORIGIN) {
            // `Cors` takes the routes this service made ready and leaves a
            // clone in their place.
            let routes = self.routes.clone();
            let ready = std::mem::replace(&mut self.routes, routes);
            Either::Left(self.cors.layer(ready).call(request))
        } else {
            Either::Right(
                self.routes
                    .call(request)
                    .map_ok(with_vary::<ResBody> as fn(_) -> _),
            )
        }
    }
}

fn with_vary<B>(mut response: Response<B>) -> Response<B> {
    response.headers_mut().append(header::VARY, VARY);
    response
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    const WIZARD: &str = "https://wizard.example";

    fn app() -> Router {
        Router::new()
            .route("/status", get(|| async { "ok" }))
            .layer(for_origins(&[WIZARD.to_string()]))
    }

    async fn answer(request: Request<Body>) -> Response<Body> {
        app().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn a_request_without_an_origin_gets_no_cors_headers_but_the_same_vary() {
        let response = answer(Request::get("/status").body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(
            headers.get_all(header::VARY).iter().collect::<Vec<_>>(),
            [VARY]
        );
        assert!(
            headers
                .keys()
                .all(|name| !name.as_str().starts_with("access-control-")),
            "{headers:?}"
        );
    }

    #[tokio::test]
    async fn a_configured_origin_is_allowed_with_credentials_and_the_same_vary() {
        let response = answer(
            Request::get("/status")
                .header(header::ORIGIN, WIZARD)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        let headers = response.headers();
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], WIZARD);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert!(
            headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
                .to_str()
                .unwrap()
                .contains("ratelimit-remaining")
        );
        assert_eq!(
            headers.get_all(header::VARY).iter().collect::<Vec<_>>(),
            [VARY]
        );
    }

    #[tokio::test]
    async fn another_origin_is_not_allowed() {
        let response = answer(
            Request::get("/status")
                .header(header::ORIGIN, "https://evil.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert!(
            !response
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
    }

    #[tokio::test]
    async fn a_preflight_from_the_configured_origin_is_answered_by_cors() {
        let response = answer(
            Request::options("/status")
                .header(header::ORIGIN, WIZARD)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT")
                .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "if-match")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], WIZARD);
        assert!(
            headers[header::ACCESS_CONTROL_ALLOW_METHODS]
                .to_str()
                .unwrap()
                .contains("PUT")
        );
        assert_eq!(headers[header::ACCESS_CONTROL_MAX_AGE], "600");
    }
}
