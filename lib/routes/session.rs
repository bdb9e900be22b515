//! `POST /api/onboarding/session`: starts an anonymous wizard session.

use axum::http::{HeaderMap, header};

/// Cookies are `Secure` except when the wizard is served from localhost,
/// where browsers would drop them over plain http.
pub fn cookie_is_secure(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let hostname = host.rsplit_once(':').map_or(host, |(name, _)| name);
    !matches!(hostname, "localhost" | "127.0.0.1" | "[::1]")
}

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
