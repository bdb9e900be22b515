//! The rate limits as HTTP: the check that limits every write (run by
//! [`crate::http::admit`]) and the client's address, from a hop the
//! deployment trusts. The counting itself is Redis's
//! ([`crate::cache::rate_limit`]); the `RateLimit-*` headers are written by
//! [`crate::http::error::apply_rate_limit_headers`].

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};

use crate::auth::Caller;
use crate::cache::Decision;
use crate::cache::rate_limit::Kind;
use crate::http::error::{ApiError, RATELIMIT_REMAINING, apply_rate_limit_headers as apply};
use crate::settings::secret_matches;
use crate::state::AppState;

/// The client's address, as a hop the deployment trusts reported it: the
/// app's own proxy (`x-onboarding-client-ip` with the `TRUSTED_PROXY_SECRET`),
/// the Vercel edge (`x-vercel-forwarded-for`, which it overwrites), API
/// Gateway (the event's source IP), the proxy named by `CLIENT_IP_HEADER`,
/// or else the TCP peer (the dev server, a function reached directly). A
/// header the client sent itself is never trusted, so rotating `X-Real-IP`
/// escapes no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The first address of a forwarding header's value (`a, b, c` → `a`).
pub fn first_address(value: &HeaderValue) -> Option<IpAddr> {
    value.to_str().ok()?.split(',').next()?.trim().parse().ok()
}

/// The client address of a request, when a trusted hop gave one.
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ClientAddress>().map(|address| address.0)
}

/// The client address, for a route that applies limits of its own.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.extensions)))
    }
}

/// The header in which the app's server-side proxy names the visitor's address.
pub const PROXY_CLIENT_IP: HeaderName = HeaderName::from_static("x-onboarding-client-ip");
/// The header in which it presents `TRUSTED_PROXY_SECRET`.
pub const PROXY_SECRET: HeaderName = HeaderName::from_static("x-onboarding-proxy-secret");

/// The visitor's address named by the app's own proxy, when the request
/// presents the proxy secret. Every request from a Next.js proxy comes from
/// the proxy's address (on Vercel, the edge's that forwarded it), so without
/// it the per-IP limits would count all visitors as one.
fn named_by_trusted_proxy(state: &AppState, request: &Request) -> Option<IpAddr> {
    let secret = state.settings().http.proxy_secret.as_ref()?;
    let presented = request.headers().get(PROXY_SECRET)?.to_str().ok()?;
    if !secret_matches(presented, secret) {
        return None;
    }
    request
        .headers()
        .get(PROXY_CLIENT_IP)
        .and_then(first_address)
}

/// Notes the client address the app's trusted proxy named, else the one the
/// adapter in front (Vercel, Lambda) set, else the configured proxy header or
/// the TCP peer, in the request's extensions.
pub fn note_client_address(state: &AppState, request: &mut Request) {
    if let Some(address) = named_by_trusted_proxy(state, request) {
        request.extensions_mut().insert(ClientAddress(address));
    } else if request.extensions().get::<ClientAddress>().is_none() {
        let address = match &state.settings().http.client_ip_header {
            Some(name) => request.headers().get(name).and_then(first_address),
            None => request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.ip()),
        };
        if let Some(address) = address {
            request.extensions_mut().insert(ClientAddress(address));
        }
    }
}

/// What the write limits decided for a request that may go on.
pub struct WriteAllowance(Option<Decision>);

/// Counts a `POST`, `PUT`, `PATCH` or `DELETE` against the write limits per
/// client IP and, when the verified [`Caller`] is in the request's
/// extensions, per user or session. A reached limit is the 429 (with
/// `Retry-After`) to answer instead; other methods pass uncounted.
///
/// Takes the request's method and extensions, not the request: a body is
/// not `Sync`, so a borrowed request would make the middleware's future not `Send`.
pub async fn check_writes(
    state: &AppState,
    method: &Method,
    extensions: &Extensions,
) -> Result<WriteAllowance, Response> {
    let is_write = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !is_write {
        return Ok(WriteAllowance(None));
    }
    let checks = state.settings().rate_limits.checks(
        Kind::Writes,
        extensions.get::<Caller>(),
        client_ip(extensions),
    );
    match state.rate_limiter().enforce(&checks).await {
        Err(denied) => Err(ApiError::RateLimited(denied).into_response()),
        Ok(decision) => Ok(WriteAllowance(decision)),
    }
}

impl WriteAllowance {
    /// Adds the `RateLimit-*` headers to the response, unless the route
    /// reported limits of its own (events, AI).
    pub fn report(self, response: &mut Response) {
        let Some(decision) = self.0 else { return };
        if !response.headers().contains_key(RATELIMIT_REMAINING) {
            apply(&decision.headers(), response.headers_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

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
    fn the_first_forwarded_address_is_the_client() {
        let value = HeaderValue::from_static("198.51.100.7, 10.0.0.1");
        assert_eq!(first_address(&value), "198.51.100.7".parse().ok());
        let value = HeaderValue::from_static("2001:db8:1:2:3:4:5:6");
        assert_eq!(first_address(&value), "2001:db8:1:2:3:4:5:6".parse().ok());
        assert_eq!(first_address(&HeaderValue::from_static("unknown")), None);
    }
}
