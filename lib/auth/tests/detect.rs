//! Where credentials come from: Bearer vs provider cookie, session header vs cookie.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;
use crate::auth::{AuthError, Caller, SessionId};

fn clerk_auth(url: &str) -> Authenticator {
    authenticator(
        settings(&[
            ("AUTH_PROVIDER", "clerk"),
            ("AUTH_ISSUER", ISSUER),
            ("AUTH_JWKS_URL", url),
        ])
        .expect("settings"),
    )
}

fn supabase_auth() -> Authenticator {
    authenticator(
        settings(&[
            ("AUTH_PROVIDER", "supabase"),
            ("AUTH_JWT_SECRET", HS_SECRET),
        ])
        .expect("settings"),
    )
}

fn supabase_claims() -> serde_json::Value {
    json!({"sub": "sb-user", "aud": "authenticated", "role": "authenticated", "exp": now() + 600})
}

#[tokio::test]
async fn no_credentials_make_an_anonymous_caller_without_a_session() {
    let caller = hs_auth()
        .detect(&HeaderMap::new())
        .await
        .expect("anonymous");
    assert_eq!(caller.session(), None);
    assert!(caller.user().is_none());
}

#[tokio::test]
async fn a_provider_cookie_authenticates_when_there_is_no_bearer_header() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = clerk_auth(&server.url);
    let token = rs_token(KID, &claims());
    let user = detect_user(
        &auth,
        &headers(&[("cookie", &format!("theme=dark; __session={token}"))]),
    )
    .await;
    assert_eq!(user.user_id().as_str(), "user_123");
}

#[tokio::test]
async fn the_bearer_header_takes_precedence_over_the_provider_cookie() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = clerk_auth(&server.url);
    let good = rs_token(KID, &claims_with("sub", json!("from-bearer")));
    let stale = rs_token(KID, &claims_with("exp", json!(now() - 600)));
    let h = headers(&[
        ("authorization", &format!("Bearer {good}")),
        ("cookie", &format!("__session={stale}")),
    ]);
    assert_eq!(
        detect_user(&auth, &h).await.user_id().as_str(),
        "from-bearer"
    );
    // The cookie alone is checked too.
    let h = headers(&[("cookie", &format!("__session={stale}"))]);
    assert_eq!(detect_err(&auth, &h).await, AuthError::Expired);
}

#[tokio::test]
async fn an_authorization_header_that_is_not_bearer_is_rejected() {
    let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
    assert!(matches!(
        detect_err(&hs_auth(), &h).await,
        AuthError::Malformed(_)
    ));
    let h = headers(&[("authorization", "Bearer ")]);
    assert!(matches!(
        detect_err(&hs_auth(), &h).await,
        AuthError::Malformed(_)
    ));
}

#[tokio::test]
async fn a_session_cookie_makes_an_anonymous_caller_with_that_session() {
    let auth = hs_auth();
    let id = SessionId::generate();
    let value = auth.session_cookies().issue(&id);
    let h = headers(&[("cookie", &format!("a=1; onboarding_session={value}; b=2"))]);
    assert_eq!(
        auth.detect(&h).await.expect("anonymous").session(),
        Some(&id)
    );
}

#[tokio::test]
async fn the_session_header_works_without_a_cookie_and_wins_over_it() {
    let auth = hs_auth();
    let (from_header, from_cookie) = (SessionId::generate(), SessionId::generate());
    let h = headers(&[(
        "x-onboarding-session",
        &auth.session_cookies().issue(&from_header),
    )]);
    assert_eq!(
        auth.detect(&h).await.expect("anonymous").session(),
        Some(&from_header)
    );
    let h = headers(&[
        (
            "x-onboarding-session",
            &auth.session_cookies().issue(&from_header),
        ),
        (
            "cookie",
            &format!(
                "onboarding_session={}",
                auth.session_cookies().issue(&from_cookie)
            ),
        ),
    ]);
    assert_eq!(
        auth.detect(&h).await.expect("anonymous").session(),
        Some(&from_header)
    );
}

#[tokio::test]
async fn a_session_cookie_with_a_tampered_signature_is_rejected() {
    let auth = hs_auth();
    let value = auth.session_cookies().issue(&SessionId::generate());
    let (id, sig) = value.split_once('.').expect("signed value");
    let mut sig_bytes = URL_SAFE_NO_PAD.decode(sig).expect("b64");
    sig_bytes[0] ^= 1;
    let tampered = format!("{id}.{}", URL_SAFE_NO_PAD.encode(sig_bytes));
    let h = headers(&[("cookie", &format!("onboarding_session={tampered}"))]);
    assert_eq!(detect_err(&auth, &h).await, AuthError::BadSession);
    let h = headers(&[("x-onboarding-session", &tampered)]);
    assert_eq!(detect_err(&auth, &h).await, AuthError::BadSession);
}

#[tokio::test]
async fn a_signed_in_user_keeps_the_anonymous_session_for_merging_drafts() {
    let auth = hs_auth();
    let id = SessionId::generate();
    let h = headers(&[
        ("authorization", &format!("Bearer {}", hs_token(&claims()))),
        (
            "cookie",
            &format!("onboarding_session={}", auth.session_cookies().issue(&id)),
        ),
    ]);
    let caller = auth.detect(&h).await.expect("user");
    assert!(matches!(caller, Caller::User(_)));
    assert_eq!(caller.session(), Some(&id));
}

#[tokio::test]
async fn a_signed_in_user_with_a_session_that_does_not_verify_is_the_user_without_it() {
    let auth = hs_auth();
    let h = headers(&[
        ("authorization", &format!("Bearer {}", hs_token(&claims()))),
        ("cookie", "onboarding_session=not-a-session.signature"),
    ]);
    let caller = auth.detect(&h).await.expect("user");
    assert!(matches!(caller, Caller::User(_)));
    assert_eq!(caller.session(), None);
    assert!(crate::auth::session_cookie_presented(&h));
    // A bad token is still refused, whatever the session.
    let h = headers(&[
        ("authorization", "Bearer not.a.token"),
        ("cookie", "onboarding_session=not-a-session.signature"),
    ]);
    assert!(auth.detect(&h).await.is_err());
}

#[tokio::test]
async fn a_supabase_base64_session_cookie_is_read() {
    let token = hs_token(&supabase_claims());
    let session = json!({"access_token": token, "refresh_token": "r", "token_type": "bearer"});
    let value = format!("base64-{}", URL_SAFE_NO_PAD.encode(session.to_string()));
    let h = headers(&[("cookie", &format!("sb-abcd-auth-token={value}"))]);
    let user = detect_user(&supabase_auth(), &h).await;
    assert_eq!(user.user_id().as_str(), "sb-user");
    assert_eq!(user.organization_role(), Some("authenticated"));
}

#[tokio::test]
async fn a_chunked_supabase_session_cookie_is_joined() {
    let token = hs_token(&supabase_claims());
    let session = json!({"access_token": token, "user": {"id": "x".repeat(500)}});
    let value = format!("base64-{}", URL_SAFE_NO_PAD.encode(session.to_string()));
    let (a, b) = value.split_at(value.len() / 2);
    let h = headers(&[(
        "cookie",
        &format!("sb-abcd-auth-token.0={a}; sb-abcd-auth-token.1={b}"),
    )]);
    detect_user(&supabase_auth(), &h).await;
}

#[tokio::test]
async fn an_older_supabase_array_cookie_is_read() {
    let token = hs_token(&supabase_claims());
    let raw = json!([token, "refresh", null, null, null]).to_string();
    // Cookie libraries URI-encode JSON values.
    let encoded: String = raw
        .bytes()
        .map(|b| match b {
            b'"' | b',' | b'[' | b']' => format!("%{b:02X}"),
            _ => char::from(b).to_string(),
        })
        .collect();
    let h = headers(&[("cookie", &format!("sb-abcd-auth-token={encoded}"))]);
    detect_user(&supabase_auth(), &h).await;
}

#[tokio::test]
async fn a_supabase_token_for_another_audience_is_rejected() {
    let token = hs_token(&json!({"sub": "u", "aud": "anon", "exp": now() + 600}));
    assert_eq!(
        detect_err(&supabase_auth(), &bearer(&token)).await,
        AuthError::WrongAudience
    );
}
