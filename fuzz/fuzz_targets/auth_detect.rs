//! Token and session parsing: `Authenticator::detect` over arbitrary
//! `Authorization`, `Cookie` and `X-Onboarding-Session` bytes. The input is
//! split on `\n` into those headers (two cookie headers, as chunked Supabase
//! cookies arrive). Never a panic; an error is never a 5xx except JWKS down.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use onboarding::auth::Authenticator;

#[path = "common.rs"]
mod common;
use common::{RUNTIME, authenticator};

/// Supabase: HS256 secret, issuer and audience, and the `sb-*-auth-token`
/// cookie format (base64- JSON, chunks), the widest parsing surface without a
/// network fetch.
static AUTH: LazyLock<Authenticator> = LazyLock::new(|| {
    authenticator(&[
        ("AUTH_PROVIDER", "supabase"),
        ("AUTH_JWT_SECRET", "fuzz-jwt-secret-0123456789abcdef0123456789"),
        ("AUTH_ISSUER", "https://issuer.fuzz.test"),
        ("AUTH_AUDIENCE", "authenticated"),
        ("SESSION_SECRET", "fuzz-session-secret-0123456789abcdef012345"),
    ])
});

const HEADERS: [&str; 4] = ["authorization", "cookie", "cookie", "x-onboarding-session"];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for (name, value) in HEADERS.iter().zip(data.split(|&b| b == b'\n')) {
        if value.is_empty() {
            continue;
        }
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(HeaderName::from_static(name), value);
        }
    }
    if let Err(error) = RUNTIME.block_on(AUTH.detect(&headers)) {
        assert_eq!(error.status(), 401, "{error:?}");
        let _ = error.www_authenticate();
    }
});
