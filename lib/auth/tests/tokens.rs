//! Token verification: every rejection reason with a real signed token.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use sha2::Sha256;

use super::*;
use crate::auth::{AuthError, Caller};

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

/// Signs arbitrary `header.payload` text with the HS test secret.
fn hs_sign_raw(header_b64: &str, payload_b64: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HS_SECRET.as_bytes()).expect("hmac key");
    mac.update(format!("{header_b64}.{payload_b64}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header_b64}.{payload_b64}.{sig}")
}

#[tokio::test]
async fn a_valid_hs256_token_is_accepted() {
    let user = detect_user(&hs_auth(), &bearer(&hs_token(&claims()))).await;
    assert_eq!(user.user_id().as_str(), "user_123");
    assert_eq!(user.organization_id(), None);
    assert_eq!(user.session(), None);
}

#[tokio::test]
async fn hs384_and_hs512_tokens_verify_with_the_secret_when_allowed() {
    let auth = authenticator(
        settings(&[
            ("AUTH_PROVIDER", "hs256"),
            ("AUTH_JWT_SECRET", HS_SECRET),
            ("AUTH_ALGORITHMS", "HS256,HS384,HS512"),
            ("AUTH_ISSUER", ISSUER),
            ("AUTH_AUDIENCE", AUDIENCE),
        ])
        .expect("settings"),
    );
    let secret = EncodingKey::from_secret(HS_SECRET.as_bytes());
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = sign(alg, None, &claims(), &secret);
        let user = detect_user(&auth, &bearer(&token)).await;
        assert_eq!(user.user_id().as_str(), "user_123", "{alg:?}");
    }
    // Signed with HS512, labelled HS384: the HS384 MAC does not match.
    let hs512 = sign(Algorithm::HS512, None, &claims(), &secret);
    let (_, rest) = hs512.split_once('.').expect("three segments");
    let relabelled = format!("{}.{rest}", b64(&json!({"alg": "HS384", "typ": "JWT"})));
    assert_eq!(
        detect_err(&auth, &bearer(&relabelled)).await,
        AuthError::BadSignature
    );
    // Another secret: same shape, wrong MAC.
    let foreign = sign(
        Algorithm::HS384,
        None,
        &claims(),
        &EncodingKey::from_secret(b"another secret of the same length, or not"),
    );
    assert_eq!(
        detect_err(&auth, &bearer(&foreign)).await,
        AuthError::BadSignature
    );
}

#[tokio::test]
async fn an_hs256_signature_segment_that_is_not_base64url_or_is_cut_short_is_rejected() {
    let token = hs_token(&claims());
    let (signed, signature) = token.rsplit_once('.').expect("three segments");
    let not_base64 = format!("{signed}.{}*", &signature[1..]);
    let err = detect_err(&hs_auth(), &bearer(&not_base64)).await;
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
    // 40 of its 43 characters: 30 bytes, decoded, of a 32-byte MAC.
    let cut_short = format!("{signed}.{}", &signature[..40]);
    assert_eq!(
        detect_err(&hs_auth(), &bearer(&cut_short)).await,
        AuthError::BadSignature
    );
    let empty = format!("{signed}.");
    assert_eq!(
        detect_err(&hs_auth(), &bearer(&empty)).await,
        AuthError::BadSignature
    );
}

#[tokio::test]
async fn a_token_with_alg_none_is_rejected_as_a_disallowed_algorithm() {
    let header = b64(&json!({"alg": "none", "typ": "JWT"}));
    let token = format!("{header}.{}.", b64(&claims()));
    assert_eq!(
        detect_err(&hs_auth(), &bearer(&token)).await,
        AuthError::DisallowedAlgorithm
    );
}

/// The algorithm-confusion forgery: HS256 keyed with the RSA public key's PEM.
fn hs256_signed_with_the_rsa_public_pem() -> String {
    sign(
        Algorithm::HS256,
        Some(KID),
        &claims(),
        &EncodingKey::from_secret(RSA_PUBLIC_PEM),
    )
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rsa_public_key_pem_is_rejected_when_keys_come_from_jwks() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = oidc_auth(&server.url, None);
    let forged = hs256_signed_with_the_rsa_public_pem();
    assert_eq!(
        detect_err(&auth, &bearer(&forged)).await,
        AuthError::DisallowedAlgorithm
    );
    // The allow-list stops it before any key lookup.
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rsa_public_key_pem_fails_the_signature_when_hs256_is_also_allowed()
 {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = authenticator(
        settings(&[
            ("AUTH_PROVIDER", "supabase"),
            ("AUTH_JWT_SECRET", HS_SECRET),
            ("AUTH_JWKS_URL", &server.url),
            ("AUTH_AUDIENCE", AUDIENCE),
        ])
        .expect("settings"),
    );
    let forged = hs256_signed_with_the_rsa_public_pem();
    // HMAC keys only ever come from AUTH_JWT_SECRET, never from the JWKS.
    assert_eq!(
        detect_err(&auth, &bearer(&forged)).await,
        AuthError::BadSignature
    );
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn an_rs256_token_is_rejected_when_only_an_hs_secret_is_configured() {
    let token = rs_token(KID, &claims());
    assert_eq!(
        detect_err(&hs_auth(), &bearer(&token)).await,
        AuthError::DisallowedAlgorithm
    );
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    assert_eq!(
        rejection_with_claim("exp", json!(now() - 120)).await,
        AuthError::Expired
    );
}

#[tokio::test]
async fn a_token_expired_within_the_clock_skew_is_still_accepted() {
    let token = hs_token(&claims_with("exp", json!(now() - 10)));
    detect_user(&hs_auth(), &bearer(&token)).await;
}

#[tokio::test]
async fn a_token_with_a_future_nbf_is_rejected() {
    assert_eq!(
        rejection_with_claim("nbf", json!(now() + 300)).await,
        AuthError::NotYetValid
    );
}

#[tokio::test]
async fn a_token_issued_in_the_future_beyond_the_skew_is_rejected() {
    assert_eq!(
        rejection_with_claim("iat", json!(now() + 300)).await,
        AuthError::NotYetValid
    );
}

#[tokio::test]
async fn a_token_from_another_issuer_is_rejected() {
    assert_eq!(
        rejection_with_claim("iss", json!("https://evil.example.test")).await,
        AuthError::WrongIssuer
    );
    assert_eq!(
        rejection_with_claim("iss", json!(null)).await,
        AuthError::WrongIssuer
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_rejected() {
    assert_eq!(
        rejection_with_claim("aud", json!("someone-else")).await,
        AuthError::WrongAudience
    );
    assert_eq!(
        rejection_with_claim("aud", json!(null)).await,
        AuthError::WrongAudience
    );
}

#[tokio::test]
async fn a_token_whose_audience_list_contains_ours_is_accepted() {
    let token = hs_token(&claims_with("aud", json!(["other", AUDIENCE])));
    detect_user(&hs_auth(), &bearer(&token)).await;
}

#[tokio::test]
async fn a_token_with_an_unknown_kid_is_rejected() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = oidc_auth(&server.url, None);
    let token = rs_token("no-such-key", &claims());
    assert_eq!(
        detect_err(&auth, &bearer(&token)).await,
        AuthError::UnknownKey
    );
}

#[tokio::test]
async fn a_jwks_token_without_a_kid_is_rejected() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = oidc_auth(&server.url, None);
    let token = sign(Algorithm::RS256, None, &claims(), &rsa_key());
    assert!(matches!(
        detect_err(&auth, &bearer(&token)).await,
        AuthError::Malformed(_)
    ));
}

#[tokio::test]
async fn a_token_with_a_tampered_payload_is_rejected() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = oidc_auth(&server.url, None);
    let token = rs_token(KID, &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&claims_with("sub", json!("admin"))),
        parts[2]
    );
    assert_eq!(
        detect_err(&auth, &bearer(&tampered)).await,
        AuthError::BadSignature
    );

    let hs = hs_token(&claims());
    let parts: Vec<&str> = hs.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&claims_with("sub", json!("admin"))),
        parts[2]
    );
    assert_eq!(
        detect_err(&hs_auth(), &bearer(&tampered)).await,
        AuthError::BadSignature
    );
}

#[tokio::test]
async fn a_100_kb_token_is_rejected_as_too_large_before_decoding() {
    assert_eq!(
        rejection_with_claim("padding", json!("x".repeat(100 * 1024))).await,
        AuthError::TooLarge
    );
}

#[tokio::test]
async fn a_token_with_broken_base64_is_rejected_as_malformed() {
    let auth = hs_auth();
    let err = detect_err(&auth, &bearer("eyJhbGciOiJIUzI1NiJ9!!.abc.def")).await;
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");

    // Correctly signed, but the payload segment is not base64url.
    let header = b64(&json!({"alg": "HS256", "typ": "JWT"}));
    let token = hs_sign_raw(&header, "not*base64");
    let err = detect_err(&auth, &bearer(&token)).await;
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn a_signed_token_whose_payload_is_not_an_object_is_rejected_as_malformed() {
    let header = b64(&json!({"alg": "HS256", "typ": "JWT"}));
    let token = hs_sign_raw(&header, &b64(&json!([1, 2, 3])));
    let err = detect_err(&hs_auth(), &bearer(&token)).await;
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
}

/// HS256 with the organization read from a nested claim, as Clerk's `o.id`.
fn hs_auth_with_nested_organization() -> Authenticator {
    hs_auth_with(&[
        ("AUTH_ORG_ID_CLAIM", "o.id"),
        ("AUTH_ORG_ROLE_CLAIM", "o.rol"),
    ])
}

/// HS256 without issuer or audience checks, for payloads written by hand.
fn hs_auth_unchecked() -> Authenticator {
    authenticator(
        settings(&[("AUTH_PROVIDER", "hs256"), ("AUTH_JWT_SECRET", HS_SECRET)])
            .expect("valid hs256 settings"),
    )
}

/// A signed token whose payload is exactly `payload`.
fn hs_token_with_payload_text(payload: &str) -> String {
    let header = b64(&json!({"alg": "HS256", "typ": "JWT"}));
    hs_sign_raw(&header, &URL_SAFE_NO_PAD.encode(payload))
}

#[tokio::test]
async fn claims_nobody_reads_are_skipped_whatever_their_shape_and_nested_ones_still_resolve() {
    let mut payload = claims();
    let object = payload.as_object_mut().expect("claims are an object");
    for (name, value) in [
        ("azp", json!("https://app.example")),
        ("sid", json!("sess_2abc")),
        ("v", json!(2)),
        ("fva", json!([5, -1])),
        ("pla", json!("u:free")),
        (
            "metadata",
            json!({"plan": {"tier": ["a", {"deep": null}]}, "n": 1.5e300}),
        ),
        ("escaped \"name\"", json!("line\nbreak \u{e9}")),
        (
            "o",
            json!({"id": "org_42", "rol": "admin", "slg": "acme", "per": "a,b"}),
        ),
    ] {
        object.insert(name.to_owned(), value);
    }
    let user = detect_user(
        &hs_auth_with_nested_organization(),
        &bearer(&hs_token(&payload)),
    )
    .await;
    assert_eq!(user.user_id().as_str(), "user_123");
    assert_eq!(user.organization_id().map(|id| id.as_str()), Some("org_42"));
    assert_eq!(user.organization_role(), Some("admin"));
}

#[tokio::test]
async fn a_claim_nobody_reads_must_still_be_well_formed_json() {
    let exp = now() + 600;
    for payload in [
        format!(r#"{{"sub":"user_123","exp":{exp},"extra":tru}}"#),
        format!(r#"{{"sub":"user_123","exp":{exp},"extra":{{"a":}}}}"#),
        format!(r#"{{"sub":"user_123","exp":{exp},"extra":"\q"}}"#),
        format!(r#"{{"sub":"user_123","exp":{exp}}} trailing"#),
        format!(r#"{{"sub":"user_123","exp":{exp},}}"#),
    ] {
        let token = hs_token_with_payload_text(&payload);
        let err = detect_err(&hs_auth_unchecked(), &bearer(&token)).await;
        assert!(matches!(err, AuthError::Malformed(_)), "{payload}: {err:?}");
    }
}

#[tokio::test]
async fn a_claim_named_twice_counts_as_its_last_value_and_escaped_names_match() {
    let exp = now() + 600;
    let twice = format!(r#"{{"sub":"first","exp":{exp},"sub":"user_123"}}"#);
    let user = detect_user(
        &hs_auth_unchecked(),
        &bearer(&hs_token_with_payload_text(&twice)),
    )
    .await;
    assert_eq!(user.user_id().as_str(), "user_123");
    let escaped = format!(r#"{{"s\u0075b":"user_123","\u0065xp":{exp}}}"#);
    let user = detect_user(
        &hs_auth_unchecked(),
        &bearer(&hs_token_with_payload_text(&escaped)),
    )
    .await;
    assert_eq!(user.user_id().as_str(), "user_123");
    // `exp` read through its escaped name: an expired one is still rejected.
    let expired = format!(r#"{{"sub":"user_123","\u0065xp":{}}}"#, now() - 3600);
    assert_eq!(
        detect_err(
            &hs_auth_unchecked(),
            &bearer(&hs_token_with_payload_text(&expired))
        )
        .await,
        AuthError::Expired
    );
}

#[tokio::test]
async fn a_token_without_sub_is_rejected() {
    assert_eq!(
        rejection_with_claim("sub", json!(null)).await,
        AuthError::MissingSubject
    );
    assert_eq!(
        rejection_with_claim("sub", json!("")).await,
        AuthError::MissingSubject
    );
}

#[tokio::test]
async fn a_token_without_exp_is_rejected() {
    assert_eq!(
        rejection_with_claim("exp", json!(null)).await,
        AuthError::MissingExpiry
    );
}

#[tokio::test]
async fn a_token_with_a_non_numeric_exp_is_rejected_as_malformed() {
    assert!(matches!(
        rejection_with_claim("exp", json!("tomorrow")).await,
        AuthError::Malformed(_)
    ));
}

#[tokio::test]
async fn a_token_with_an_exp_past_the_year_9999_is_rejected_as_malformed_not_a_panic() {
    for exp in [
        json!(1e300),
        json!(1e23),
        json!(1.9e19),
        json!(253_402_300_800u64),
    ] {
        assert!(
            matches!(
                rejection_with_claim("exp", exp.clone()).await,
                AuthError::Malformed(_)
            ),
            "exp {exp}"
        );
    }
}

#[tokio::test]
async fn nbf_and_iat_out_of_range_are_rejected_as_malformed() {
    for claim in ["nbf", "iat"] {
        for value in [json!(1e300), json!(-1)] {
            assert!(
                matches!(
                    rejection_with_claim(claim, value.clone()).await,
                    AuthError::Malformed(_)
                ),
                "{claim} {value}"
            );
        }
    }
}

#[tokio::test]
async fn a_token_that_expires_in_the_year_9999_is_accepted() {
    let token = hs_token(&claims_with("exp", json!(253_402_300_799u64)));
    assert!(hs_auth().detect(&bearer(&token)).await.is_ok());
}

#[tokio::test]
async fn a_token_with_an_unknown_critical_header_is_rejected() {
    let header = b64(&json!({"alg": "HS256", "crit": ["exp"], "exp": 1}));
    let token = hs_sign_raw(&header, &b64(&claims()));
    assert!(matches!(
        detect_err(&hs_auth(), &bearer(&token)).await,
        AuthError::Malformed(_)
    ));
}

#[tokio::test]
async fn a_header_read_before_vouches_for_no_other_header() {
    // One verifier, so each token's header follows the one it last read.
    let auth = hs_auth();
    let good = b64(&json!({"alg": "HS256", "typ": "JWT"}));
    let signed_with = |header: &str, subject: &str| {
        hs_sign_raw(header, &b64(&claims_with("sub", json!(subject))))
    };
    let accepted_as = async |subject: &str| {
        let token = signed_with(&good, subject);
        detect_user(&auth, &bearer(&token))
            .await
            .user_id()
            .as_str()
            .to_string()
    };
    assert_eq!(accepted_as("first").await, "first");
    let critical = b64(&json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"], "exp": 1}));
    for (header, expected) in [
        (
            critical.as_str(),
            AuthError::Malformed("token header has unsupported crit"),
        ),
        (
            "not*base64",
            AuthError::Malformed("token header is not base64url"),
        ),
        (
            &b64(&json!({"alg": "none"})),
            AuthError::DisallowedAlgorithm,
        ),
        (
            &b64(&json!({"alg": "HS384"})),
            AuthError::DisallowedAlgorithm,
        ),
        (
            &b64(&json!(["HS256"])),
            AuthError::Malformed("token header is not a JSON object"),
        ),
        (
            &URL_SAFE_NO_PAD.encode(b"{\"alg\":"),
            AuthError::Malformed("token header is not valid JSON"),
        ),
    ] {
        for _ in 0..2 {
            // Twice: a header that failed is not kept as the last one read.
            assert_eq!(
                detect_err(&auth, &bearer(&signed_with(header, "second"))).await,
                expected,
                "{header}"
            );
        }
    }
    // The good header again, after the others, for a new token.
    assert_eq!(accepted_as("third").await, "third");
}

#[tokio::test]
async fn a_jwe_shaped_token_is_rejected_with_a_clear_reason() {
    let err = detect_err(&hs_auth(), &bearer("a.b.c.d.e")).await;
    assert_eq!(
        err,
        AuthError::Malformed("encrypted tokens (JWE) are not supported")
    );
}

#[tokio::test]
async fn a_token_of_other_than_three_or_five_segments_is_not_a_compact_jws() {
    for token in ["a", "a.b", "a.b.c.d", "a.b.c.d.e.f"] {
        let err = detect_err(&hs_auth(), &bearer(token)).await;
        assert_eq!(
            err,
            AuthError::Malformed("token is not a compact JWS"),
            "{token}"
        );
    }
}

#[tokio::test]
async fn an_rs256_token_verified_through_jwks_is_accepted() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = oidc_auth(&server.url, None);
    let user = detect_user(&auth, &bearer(&rs_token(KID, &claims()))).await;
    assert_eq!(user.user_id().as_str(), "user_123");
}

#[tokio::test]
async fn an_es256_token_verified_through_jwks_is_accepted() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = oidc_auth(&server.url, None);
    let token = sign(Algorithm::ES256, Some(EC_KID), &claims(), &ec_key());
    detect_user(&auth, &bearer(&token)).await;
}

#[tokio::test]
async fn a_token_whose_algorithm_does_not_match_the_jwk_is_rejected() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = oidc_auth(&server.url, None);
    // RS256 header pointing at the EC key.
    let token = rs_token(EC_KID, &claims());
    assert_eq!(
        detect_err(&auth, &bearer(&token)).await,
        AuthError::DisallowedAlgorithm
    );
}

#[tokio::test]
async fn clerk_v2_session_tokens_carry_the_organization_in_o() {
    let server = JwksServer::start(Duration::ZERO).await;
    let auth = authenticator(
        settings(&[
            ("AUTH_PROVIDER", "clerk"),
            ("AUTH_ISSUER", ISSUER),
            ("AUTH_JWKS_URL", &server.url),
        ])
        .expect("settings"),
    );
    let v2 = claims_with("o", json!({"id": "org_2", "rol": "admin", "slg": "acme"}));
    let user = detect_user(&auth, &bearer(&rs_token(KID, &v2))).await;
    assert_eq!(user.organization_id().map(|o| o.as_str()), Some("org_2"));
    assert_eq!(user.organization_role(), Some("admin"));

    let mut v1 = claims_with("org_id", json!("org_1"));
    v1["org_role"] = json!("org:member");
    let user = detect_user(&auth, &bearer(&rs_token(KID, &v1))).await;
    assert_eq!(user.organization_id().map(|o| o.as_str()), Some("org_1"));
    assert_eq!(user.organization_role(), Some("org:member"));
}

#[tokio::test]
async fn dotted_claim_paths_read_nested_claims() {
    let auth = authenticator(
        settings(&[
            ("AUTH_JWT_SECRET", HS_SECRET),
            ("AUTH_USER_ID_CLAIM", "user.id"),
            ("AUTH_ORG_ID_CLAIM", "app_metadata.org_id"),
            ("AUTH_ORG_ROLE_CLAIM", "app_metadata.org_role"),
        ])
        .expect("settings"),
    );
    let mut c = claims_with("user", json!({"id": "u-9"}));
    c["app_metadata"] = json!({"org_id": "org-9", "org_role": "owner"});
    let user = detect_user(&auth, &bearer(&hs_token(&c))).await;
    assert_eq!(user.user_id().as_str(), "u-9");
    assert_eq!(user.organization_id().map(|o| o.as_str()), Some("org-9"));
    assert_eq!(user.organization_role(), Some("owner"));
}

#[tokio::test]
async fn an_organization_id_with_control_characters_is_rejected() {
    assert!(matches!(
        rejection_with_claim("org_id", json!("org\u{0}1")).await,
        AuthError::Malformed(_)
    ));
}

#[tokio::test]
async fn successful_verifications_are_cached_and_failures_are_not() {
    let auth = hs_auth();
    let good = hs_token(&claims());
    detect_user(&auth, &bearer(&good)).await;
    detect_user(&auth, &bearer(&good)).await;
    assert_eq!(auth.verifier_cached_entries(), 1);
    let bad = hs_token(&claims_with("exp", json!(now() - 600)));
    detect_err(&auth, &bearer(&bad)).await;
    assert_eq!(auth.verifier_cached_entries(), 1);
}

#[tokio::test]
async fn a_bad_token_is_rejected_even_with_a_valid_session_cookie() {
    let auth = hs_auth();
    let session = auth
        .session_cookies()
        .issue(&crate::auth::SessionId::generate());
    let token = hs_token(&claims_with("exp", json!(now() - 600)));
    let h = headers(&[
        ("authorization", &format!("Bearer {token}")),
        ("cookie", &format!("onboarding_session={session}")),
    ]);
    assert_eq!(detect_err(&auth, &h).await, AuthError::Expired);
    // And no credential at all is an anonymous caller, not an error.
    assert_eq!(
        auth.detect(&HeaderMap::new()).await,
        Ok(Caller::Anonymous(crate::auth::AnonymousCaller {
            session: None
        }))
    );
}

#[test]
fn www_authenticate_names_the_reason_without_token_details() {
    assert_eq!(
        AuthError::Expired.www_authenticate(),
        "Bearer error=\"invalid_token\", error_description=\"token has expired\""
    );
    assert_eq!(
        AuthError::JwksUnavailable.status(),
        http::StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        AuthError::BadSignature.status(),
        http::StatusCode::UNAUTHORIZED
    );
}
