//! JWKS caching, refresh rate limit, stale-if-error and outage behaviour,
//! against a local axum server that counts requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::auth::AuthError;

/// Distinct tokens so the verified-claims cache does not hide JWKS lookups.
fn token_n(n: i64) -> String {
    rs_token(KID, &claims_with("n", json!(n)))
}

#[tokio::test]
async fn the_key_set_is_fetched_once_for_many_verifications() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = oidc_auth(&server.url, None);
    for n in 0..20 {
        detect_user(&auth, &bearer(&token_n(n))).await;
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn concurrent_cold_start_verifications_share_one_fetch() {
    let server = JwksServer::start(Duration::from_millis(200)).await;
    let auth = Arc::new(oidc_auth(&server.url, None));
    let mut tasks = Vec::new();
    for n in 0..16 {
        let auth = Arc::clone(&auth);
        tasks.push(tokio::spawn(async move {
            auth.detect(&bearer(&token_n(n))).await
        }));
    }
    for task in tasks {
        assert!(task.await.expect("task").is_ok());
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn an_unknown_kid_triggers_at_most_one_refresh_within_the_rate_window() {
    let server = JwksServer::start(Duration::ZERO).await;
    let window = Duration::from_millis(1500);
    let timing = (Duration::from_secs(3), Duration::from_secs(600), window);
    let auth = oidc_auth(&server.url, Some(timing));
    // Signed up front: RSA signing in debug builds is slow enough to span windows.
    let rotated: Vec<String> = (0..10)
        .map(|n| rs_token(&format!("rotated-{n}"), &claims()))
        .collect();
    let known = token_n(1);
    detect_user(&auth, &bearer(&token_n(0))).await;
    assert_eq!(server.hits(), 1);
    // Within the window of the initial fetch: no refetch at all.
    let unknown = rs_token("rotated", &claims());
    assert_eq!(
        detect_err(&auth, &bearer(&unknown)).await,
        AuthError::UnknownKey
    );
    assert_eq!(server.hits(), 1);

    tokio::time::sleep(window).await;
    for token in &rotated {
        assert_eq!(
            detect_err(&auth, &bearer(token)).await,
            AuthError::UnknownKey
        );
    }
    assert_eq!(
        server.hits(),
        2,
        "one refresh for the first unknown kid, then rate-limited"
    );
    // Known keys keep working from the cache meanwhile.
    detect_user(&auth, &bearer(&known)).await;
    assert_eq!(server.hits(), 2);

    tokio::time::sleep(window).await;
    assert_eq!(
        detect_err(&auth, &bearer(&unknown)).await,
        AuthError::UnknownKey
    );
    assert_eq!(server.hits(), 3, "a new window allows one more refresh");
}

#[tokio::test]
async fn with_default_timing_an_unknown_kid_does_not_refetch_right_after_a_fetch() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = oidc_auth(&server.url, None);
    detect_user(&auth, &bearer(&token_n(0))).await;
    for n in 0..10 {
        let token = rs_token(&format!("rotated-{n}"), &claims());
        assert_eq!(
            detect_err(&auth, &bearer(&token)).await,
            AuthError::UnknownKey
        );
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_cached_key_still_verifies_when_the_endpoint_answers_500() {
    let server = JwksServer::start(Duration::ZERO).await;
    // Zero TTL: every lookup wants a refresh.
    let timing = (Duration::from_secs(3), Duration::ZERO, Duration::ZERO);
    let auth = oidc_auth(&server.url, Some(timing));
    detect_user(&auth, &bearer(&token_n(0))).await;
    server.set_mode(SERVE_500);
    detect_user(&auth, &bearer(&token_n(1))).await;
    assert_eq!(server.hits(), 2, "the refresh was attempted and failed");
}

#[tokio::test]
async fn a_cached_key_still_verifies_when_the_endpoint_hangs_past_the_timeout() {
    let server = JwksServer::start(Duration::ZERO).await;
    let timing = (Duration::from_millis(300), Duration::ZERO, Duration::ZERO);
    let auth = oidc_auth(&server.url, Some(timing));
    detect_user(&auth, &bearer(&token_n(0))).await;
    server.set_mode(SERVE_HANG);
    let started = Instant::now();
    detect_user(&auth, &bearer(&token_n(1))).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "timed out after {elapsed:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(250),
        "refresh was not attempted: {elapsed:?}"
    );
}

#[tokio::test]
async fn without_a_cached_set_a_failing_endpoint_is_jwks_unavailable() {
    let server = JwksServer::start(Duration::ZERO).await;
    server.set_mode(SERVE_500);
    let auth = oidc_auth(&server.url, None);
    assert_eq!(
        detect_err(&auth, &bearer(&token_n(0))).await,
        AuthError::JwksUnavailable
    );
    assert_eq!(
        AuthError::JwksUnavailable.status(),
        http::StatusCode::SERVICE_UNAVAILABLE
    );
    // Without a cache, the next request tries again rather than failing for 30 s.
    server.set_mode(SERVE_OK);
    detect_user(&auth, &bearer(&token_n(1))).await;
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn without_a_cached_set_a_hanging_endpoint_is_jwks_unavailable() {
    let server = JwksServer::start(Duration::ZERO).await;
    server.set_mode(SERVE_HANG);
    let timing = (
        Duration::from_millis(300),
        Duration::from_secs(600),
        Duration::from_secs(30),
    );
    let auth = oidc_auth(&server.url, Some(timing));
    assert_eq!(
        detect_err(&auth, &bearer(&token_n(0))).await,
        AuthError::JwksUnavailable
    );
}

#[test]
fn symmetric_and_encryption_keys_in_a_jwks_are_ignored() {
    let mut doc = jwks_document();
    if let Some(keys) = doc["keys"].as_array_mut() {
        keys.push(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}));
        keys.push(json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}));
        keys.push(json!({"kty": "weird", "kid": "weird"}));
    }
    let body = serde_json::to_vec(&doc).expect("json");
    let keys = crate::auth::jwks::parse_jwks(&body).expect("usable keys");
    let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
    kids.sort_unstable();
    assert_eq!(kids, vec![EC_KID, KID]);
}
