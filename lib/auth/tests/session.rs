//! Session ids and signed session cookies.

use std::time::Duration;

use crate::auth::{AuthError, SessionCookies, SessionId};

fn cookies() -> SessionCookies {
    SessionCookies::new(super::SESSION_SECRET).expect("long enough")
}

#[test]
fn a_session_id_is_32_lowercase_hex_digits_and_round_trips() {
    let id = SessionId::generate();
    let hex = id.to_string();
    assert_eq!(hex.len(), 32);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(SessionId::parse_hex(&hex), Ok(id));
    assert_ne!(SessionId::generate(), id);
    assert_eq!(
        SessionId::parse_hex(&hex.to_uppercase()),
        Err(AuthError::BadSession)
    );
}

#[test]
fn the_session_hash_is_the_sha256_of_the_hex_form() {
    let id = SessionId::parse_hex("000102030405060708090a0b0c0d0e0f").expect("valid");
    // printf '%s' 000102030405060708090a0b0c0d0e0f | sha256sum
    assert_eq!(
        id.hash_hex(),
        "d65df89f702eec58ca3c7bf2001c9ffc7cd80553ae01d42a799ba26756142d96"
    );
}

#[test]
fn debug_output_never_shows_session_ids_or_secrets() {
    let id = SessionId::generate();
    assert!(!format!("{id:?}").contains(&id.to_hex()));
    let signer = cookies();
    assert!(!format!("{signer:?}").contains(super::SESSION_SECRET));
    let settings = super::settings(&[("AUTH_JWT_SECRET", super::HS_SECRET)]).expect("settings");
    let shown = format!("{settings:?}");
    assert!(!shown.contains(super::HS_SECRET) && !shown.contains(super::SESSION_SECRET));
}

#[test]
fn an_issued_cookie_verifies_and_a_tampered_one_does_not() {
    let signer = cookies();
    let id = SessionId::generate();
    let value = signer.issue(&id);
    assert_eq!(signer.verify(&value), Ok(id));

    let other = SessionId::generate().to_hex();
    let (_, sig) = value.split_once('.').expect("signed");
    assert_eq!(
        signer.verify(&format!("{other}.{sig}")),
        Err(AuthError::BadSession)
    );
    assert_eq!(signer.verify(&id.to_hex()), Err(AuthError::BadSession));
    assert_eq!(signer.verify(""), Err(AuthError::BadSession));

    let other_signer = SessionCookies::new("another-secret-another-secret-another!!").expect("ok");
    assert_eq!(other_signer.verify(&value), Err(AuthError::BadSession));
}

#[test]
fn the_set_cookie_header_has_the_required_attributes() {
    let signer = cookies();
    let id = SessionId::generate();
    let header = signer.set_cookie_header(&id, true, Duration::from_secs(3600));
    let text = header.to_str().expect("ascii");
    assert_eq!(
        text,
        format!(
            "onboarding_session={}; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax; Secure",
            signer.issue(&id)
        )
    );
    let dev = signer.set_cookie_header(&id, false, Duration::from_secs(60));
    assert!(!dev.to_str().expect("ascii").contains("Secure"));
}

#[test]
fn a_short_session_secret_is_refused() {
    let err = SessionCookies::new("short").expect_err("too short");
    assert_eq!(err.variable(), "SESSION_SECRET");
}
