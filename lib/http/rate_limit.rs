//! The rate limits as HTTP: the middleware that limits every write and the
//! client's address as Vercel reports it. The counting itself is Redis's
//! ([`crate::cache::rate_limit`]); the `RateLimit-*` headers are written by
//! [`crate::http::error::apply_rate_limit_headers`].

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Caller;
use crate::cache::rate_limit::Kind;
use crate::http::error::{ApiError, apply_rate_limit_headers as apply};
use crate::state::AppState;

/// The client's IP as Vercel reports it (`x-vercel-forwarded-for`,
/// `x-real-ip`, then the first `x-forwarded-for` entry, which Vercel
/// overwrites so clients cannot forge it).
pub fn client_ip(headers: &HeaderMap) -> Option<IpAddr> {
    ["x-vercel-forwarded-for", "x-real-ip", "x-forwarded-for"]
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok())
        .filter_map(|value| value.split(',').next()?.trim().parse().ok())
        .next()
}

/// Axum middleware for write routes (`from_fn_with_state(state, rate_limit::writes)`).
/// Limits `POST`, `PUT`, `PATCH` and `DELETE` per client IP and, when an
/// earlier layer put the verified [`Caller`] in the request extensions, per
/// user or session; answers 429 with `Retry-After` when a limit is reached,
/// and adds the `RateLimit-*` headers to the responses it lets through.
pub async fn writes(State(state): State<AppState>, request: Request, next: Next) -> Response {
    limited(Kind::Writes, &state, request, next).await
}

async fn limited(kind: Kind, state: &AppState, request: Request, next: Next) -> Response {
    let is_write = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if kind == Kind::Writes && !is_write {
        return next.run(request).await;
    }
    let checks = state.settings().rate_limits.checks(
        kind,
        request.extensions().get::<Caller>(),
        client_ip(request.headers()),
    );
    match state.rate_limiter().enforce(&checks).await {
        Err(denied) => ApiError::RateLimited(denied).into_response(),
        Ok(decision) => {
            let mut response = next.run(request).await;
            if let Some(decision) = decision {
                apply(&decision.headers(), response.headers_mut());
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Decision;
    use axum::http::HeaderValue;

    #[test]
    fn a_denial_carries_the_rate_limit_headers_and_retry_after() {
        let decision = Decision::of_five(false, 0);
        let mut map = HeaderMap::new();
        apply(&decision.headers_at(58_500), &mut map);
        assert_eq!(map["ratelimit-limit"], "5");
        assert_eq!(map["ratelimit-remaining"], "0");
        assert_eq!(map["ratelimit-reset"], "2");
        assert_eq!(map["retry-after"], "2");
    }

    #[test]
    fn an_allowed_request_has_no_retry_after() {
        let decision = Decision::of_five(true, 4);
        let mut map = HeaderMap::new();
        apply(&decision.headers_at(1_000), &mut map);
        assert!(!map.contains_key("retry-after"));
        assert_eq!(map["ratelimit-reset"], "59");
    }

    #[test]
    fn the_client_ip_comes_from_vercels_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.7, 10.0.0.1"),
        );
        assert_eq!(client_ip(&headers), "198.51.100.7".parse().ok());
        headers.insert(
            "x-real-ip",
            HeaderValue::from_static("2001:db8:1:2:3:4:5:6"),
        );
        assert_eq!(client_ip(&headers), "2001:db8:1:2:3:4:5:6".parse().ok());
    }
}
