//! Unit tests for the auth module. They live inside the module so they move
//! with it into the main crate. Test keys are in `../testdata/`.

mod detect;
mod jwks;
mod props;
mod session;
mod settings;
mod tokens;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::auth::{AuthError, AuthSettings, Authenticator, Caller};
use crate::settings::{ConfigError, Profile};

pub(super) const HS_SECRET: &str = "hs-test-secret-0123456789abcdef0123456789";
pub(super) const SESSION_SECRET: &str = "session-test-secret-0123456789abcdef012345";
pub(super) const ISSUER: &str = "https://issuer.example.test";
pub(super) const AUDIENCE: &str = "onboarding-api";
pub(super) const KID: &str = "test-rsa-1";
pub(super) const EC_KID: &str = "test-ec-1";

pub(super) const RSA_PRIVATE_DER: &[u8] = include_bytes!("../testdata/rsa_private_pkcs1.der");
pub(super) const RSA_PUBLIC_PEM: &[u8] = include_bytes!("../testdata/rsa_public.pem");
pub(super) const EC_PRIVATE_DER: &[u8] = include_bytes!("../testdata/ec_private_pkcs8.der");

pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Settings from a fixed set of variables (SESSION_SECRET is always added).
pub(super) fn settings(vars: &[(&str, &str)]) -> Result<AuthSettings, ConfigError> {
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.entry("SESSION_SECRET".to_owned())
        .or_insert_with(|| SESSION_SECRET.to_owned());
    AuthSettings::from_lookup(&move |name: &str| map.get(name).cloned(), Profile::Deployed)
}

pub(super) fn authenticator(settings: AuthSettings) -> Authenticator {
    Authenticator::new(settings, reqwest::Client::new())
}

/// Local-dev style HS256 authenticator with issuer and audience checks.
pub(super) fn hs_auth() -> Authenticator {
    hs_auth_with(&[])
}

/// [`hs_auth`] with more settings.
pub(super) fn hs_auth_with(more: &[(&str, &str)]) -> Authenticator {
    let mut vars = vec![
        ("AUTH_PROVIDER", "hs256"),
        ("AUTH_JWT_SECRET", HS_SECRET),
        ("AUTH_ISSUER", ISSUER),
        ("AUTH_AUDIENCE", AUDIENCE),
    ];
    vars.extend_from_slice(more);
    authenticator(settings(&vars).expect("valid hs256 settings"))
}

/// OIDC authenticator against a test JWKS server.
pub(super) fn oidc_auth(
    jwks_url: &str,
    timing: Option<(Duration, Duration, Duration)>,
) -> Authenticator {
    let mut s = settings(&[
        ("AUTH_PROVIDER", "oidc"),
        ("AUTH_JWKS_URL", jwks_url),
        ("AUTH_ISSUER", ISSUER),
        ("AUTH_AUDIENCE", AUDIENCE),
    ])
    .expect("valid oidc settings");
    if let Some((timeout, ttl, min_refresh)) = timing {
        s = s.with_jwks_timing(timeout, ttl, min_refresh);
    }
    authenticator(s)
}

pub(super) fn claims() -> Value {
    json!({
        "sub": "user_123",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now(),
        "exp": now() + 600,
    })
}

/// `claims()` with `key` set to `value` (or removed when `value` is null).
pub(super) fn claims_with(key: &str, value: Value) -> Value {
    let mut c = claims();
    if let Some(obj) = c.as_object_mut() {
        if value.is_null() {
            obj.remove(key);
        } else {
            obj.insert(key.to_owned(), value);
        }
    }
    c
}

pub(super) fn hs_token(claims: &Value) -> String {
    crate::auth::mint_dev_token(HS_SECRET.as_bytes(), claims)
}

pub(super) fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("test token signs")
}

pub(super) fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_der(RSA_PRIVATE_DER)
}

pub(super) fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_der(EC_PRIVATE_DER)
}

pub(super) fn rs_token(kid: &str, claims: &Value) -> String {
    sign(Algorithm::RS256, Some(kid), claims, &rsa_key())
}

/// The public JWKS for the fixture keys.
pub(super) fn jwks_document() -> Value {
    let mut rsa = Jwk::from_encoding_key(&rsa_key(), Algorithm::RS256).expect("rsa jwk");
    rsa.common.key_id = Some(KID.to_owned());
    rsa.common.key_algorithm = Some(KeyAlgorithm::RS256);
    let mut ec = Jwk::from_encoding_key(&ec_key(), Algorithm::ES256).expect("ec jwk");
    ec.common.key_id = Some(EC_KID.to_owned());
    serde_json::to_value(JwkSet {
        keys: vec![rsa, ec],
    })
    .expect("jwks serializes")
}

pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

pub(super) fn bearer(token: &str) -> HeaderMap {
    headers(&[("authorization", &format!("Bearer {token}"))])
}

/// What an HS256 token fails with whose claims differ from valid ones only in `key`.
pub(super) async fn rejection_with_claim(key: &str, value: Value) -> AuthError {
    detect_err(&hs_auth(), &bearer(&hs_token(&claims_with(key, value)))).await
}

pub(super) async fn detect_err(auth: &Authenticator, headers: &HeaderMap) -> AuthError {
    match auth.detect(headers).await {
        Ok(caller) => panic!("expected rejection, got {caller:?}"),
        Err(err) => err,
    }
}

pub(super) async fn detect_user(
    auth: &Authenticator,
    headers: &HeaderMap,
) -> crate::auth::UserCaller {
    match auth.detect(headers).await {
        Ok(Caller::User(user)) => user,
        other => panic!("expected a user, got {other:?}"),
    }
}

/// How the test JWKS endpoint behaves.
pub(super) const SERVE_OK: u8 = 0;
pub(super) const SERVE_500: u8 = 1;
pub(super) const SERVE_HANG: u8 = 2;

/// An axum JWKS server on 127.0.0.1:0 that counts requests.
pub(super) struct JwksServer {
    pub(super) url: String,
    pub(super) hits: Arc<AtomicUsize>,
    pub(super) mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    /// `delay` is added before every answer, to make concurrent requests overlap.
    pub(super) async fn start(delay: Duration) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let mode = Arc::new(AtomicU8::new(SERVE_OK));
        let document = Arc::new(jwks_document());
        let (h, m) = (Arc::clone(&hits), Arc::clone(&mode));
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                let (h, m, document) = (Arc::clone(&h), Arc::clone(&m), Arc::clone(&document));
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let response: Response = match m.load(Ordering::SeqCst) {
                        SERVE_500 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        SERVE_HANG => {
                            tokio::time::sleep(Duration::from_secs(10)).await;
                            axum::Json((*document).clone()).into_response()
                        }
                        _ => axum::Json((*document).clone()).into_response(),
                    };
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test server");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/jwks.json"),
            hits,
            mode,
            task,
        }
    }

    pub(super) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(super) fn set_mode(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}
