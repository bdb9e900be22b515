//! Tokens the API must accept (HS256 with the shared secret, RS256 through a
//! loopback JWKS endpoint, so `kid` handling is exercised) and the corpus of
//! hostile ones it must answer 401.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::services::serve_loopback;

pub const JWT_SECRET: &str = "reliability-jwt-secret-0123456789abcdef0123";
pub const ISSUER: &str = "https://issuer.reliability.test";
pub const AUDIENCE: &str = "onboarding-reliability";
const KID: &str = "reliability-rsa-1";
const RSA_PRIVATE_DER: &[u8] = include_bytes!("../../lib/auth/testdata/rsa_private_pkcs1.der");
const RSA_PUBLIC_PEM: &[u8] = include_bytes!("../../lib/auth/testdata/rsa_public.pem");

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_der(RSA_PRIVATE_DER)
}

/// Serves the RSA key as a JWKS document on loopback; returns its URL.
pub async fn serve_jwks() -> anyhow::Result<String> {
    let mut jwk = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256)?;
    jwk.common.key_id = Some(KID.to_owned());
    jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
    let document = serde_json::to_value(JwkSet { keys: vec![jwk] })?;
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let document = document.clone();
            async move { axum::Json(document) }
        }),
    );
    let (address, _) = serve_loopback(app).await?;
    Ok(format!("http://{address}/jwks.json"))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 3600 })
}

pub fn hs_token(claims: &Value) -> String {
    onboarding::auth::mint_dev_token(JWT_SECRET.as_bytes(), claims)
}

/// Signed with the key the JWKS endpoint publishes, under its `kid`.
pub fn rs_token(claims: &Value) -> String {
    sign(Algorithm::RS256, Some(KID), claims, &rsa_key())
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("tokens sign")
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

/// Replaces the payload of a signed token, keeping header and signature.
fn tampered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(&claims("rel_admin")), parts[2])
}

/// Tokens that must each be answered 401.
pub fn bad_tokens() -> Vec<(&'static str, String)> {
    let base = claims("rel_hostile");
    let none_header = b64(&json!({ "alg": "none", "typ": "JWT" }));
    vec![
        ("alg none", format!("{none_header}.{}.", b64(&base))),
        (
            "alg none, signature kept",
            format!(
                "{none_header}.{}.{}",
                b64(&base),
                hs_token(&base).rsplit('.').next().unwrap_or("")
            ),
        ),
        (
            "HS256 signed with the RSA public key",
            sign(
                Algorithm::HS256,
                Some(KID),
                &base,
                &EncodingKey::from_secret(RSA_PUBLIC_PEM),
            ),
        ),
        (
            "expired",
            hs_token(&with(base.clone(), "exp", json!(now() - 3600))),
        ),
        (
            "future nbf",
            hs_token(&with(base.clone(), "nbf", json!(now() + 3600))),
        ),
        (
            "wrong issuer",
            hs_token(&with(
                base.clone(),
                "iss",
                json!("https://evil.example.test"),
            )),
        ),
        (
            "wrong audience",
            hs_token(&with(base.clone(), "aud", json!("someone-else"))),
        ),
        (
            "unknown kid",
            sign(Algorithm::RS256, Some("no-such-key"), &base, &rsa_key()),
        ),
        ("tampered HS256 payload", tampered(&hs_token(&base))),
        ("tampered RS256 payload", tampered(&rs_token(&base))),
        (
            "100 KB token",
            hs_token(&with(
                base.clone(),
                "padding",
                json!("x".repeat(100 * 1024)),
            )),
        ),
        (
            "broken base64",
            "eyJhbGciOiJIUzI1NiJ9!!.abc.def".to_string(),
        ),
        ("not three segments", "abc.def".to_string()),
        ("JWE shaped", "a.b.c.d.e".to_string()),
        (
            "signed with another secret",
            onboarding::auth::mint_dev_token(b"another-secret-0123456789abcdef0123456789", &base),
        ),
    ]
}
