//! Token and session parsing: `Authenticator::detect` over arbitrary
//! `Authorization`, `Cookie` and `X-Onboarding-Session` bytes. The input is
//! split on `\n` into those headers (two cookie headers, as chunked Supabase
//! cookies arrive). Never a panic; an error is never a 5xx except JWKS down.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use onboarding::auth::{AuthSettings, Authenticator};
use onboarding::settings::Profile;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
});

/// Supabase: HS256 secret, issuer and audience, and the `sb-*-auth-token`
/// cookie format (base64- JSON, chunks), the widest parsing surface without a
/// network fetch.
static AUTH: LazyLock<Authenticator> = LazyLock::new(|| {
    let lookup = |name: &str| {
        match name {
            "AUTH_PROVIDER" => Some("supabase"),
            "AUTH_JWT_SECRET" => Some("fuzz-jwt-secret-0123456789abcdef0123456789"),
            "AUTH_ISSUER" => Some("https://issuer.fuzz.test"),
            "AUTH_AUDIENCE" => Some("authenticated"),
            "SESSION_SECRET" => Some("fuzz-session-secret-0123456789abcdef012345"),
            _ => None,
        }
        .map(str::to_owned)
    };
    let settings =
        AuthSettings::from_lookup(&lookup, Profile::Deployed).expect("valid fuzz auth settings");
    Authenticator::new(settings, reqwest::Client::new())
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
