//! Correctly signed tokens whose time claims are extreme numbers: `exp`,
//! `nbf` and `iat` from arbitrary bytes (as JSON numbers: huge, negative,
//! fractional, 1e300). A signed token never panics the verifier; it is
//! accepted or refused with a 401.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use onboarding::auth::{Authenticator, mint_dev_token};

#[path = "common.rs"]
mod common;
use common::{RUNTIME, authenticator};
use serde_json::{Value, json};

const SECRET: &str = "fuzz-jwt-secret-0123456789abcdef0123456789";

static AUTH: LazyLock<Authenticator> = LazyLock::new(|| {
    authenticator(&[
        ("AUTH_PROVIDER", "hs256"),
        ("AUTH_JWT_SECRET", SECRET),
        ("SESSION_SECRET", "fuzz-session-secret-0123456789abcdef012345"),
    ])
});

/// A JSON number from 9 bytes: the first picks the shape, the rest its bits.
fn number(bytes: &[u8]) -> Value {
    let mut raw = [0u8; 8];
    raw[..bytes.len().saturating_sub(1).min(8)]
        .copy_from_slice(&bytes[1..bytes.len().min(9)]);
    match bytes.first().copied().unwrap_or(0) % 4 {
        0 => json!(u64::from_le_bytes(raw)),
        1 => json!(i64::from_le_bytes(raw)),
        2 => serde_json::Number::from_f64(f64::from_le_bytes(raw))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        _ => json!(f64::from(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])) * 1e15),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut chunks = data.chunks(9);
    let mut claims = json!({ "sub": "fuzz-user" });
    for claim in ["exp", "nbf", "iat"] {
        if let Some(bytes) = chunks.next() {
            claims[claim] = number(bytes);
        }
    }
    let token = mint_dev_token(SECRET.as_bytes(), &claims);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a JWT is a header value"),
    );
    if let Err(error) = RUNTIME.block_on(AUTH.detect(&headers)) {
        assert_eq!(error.status(), 401, "{error:?} for {claims}");
    }
});
