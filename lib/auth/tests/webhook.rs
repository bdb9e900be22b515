//! Webhook signatures (Svix / Standard Webhooks) and the Clerk envelope.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use serde_json::json;
use sha2::Sha256;

use crate::auth::{
    ClerkEvent, ClerkWebhookSettings, InvalidIdentifier, TOLERANCE_SECONDS, WebhookError,
    verify_webhook,
};
use crate::settings::{ExposeSecret, SecretString};

// Svix's documented example ("Verifying Webhooks Manually" and its libraries'
// README: this secret, message id, timestamp and payload carry this signature).
const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SVIX_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SVIX_TIMESTAMP: i64 = 1_614_265_330;
const SVIX_PAYLOAD: &str = r#"{"test": 2432232314}"#;
const SVIX_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn secret(value: &str) -> SecretString {
    SecretString::from(value.to_string())
}

fn headers(prefix: &str, id: &str, timestamp: &str, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("id", id),
        ("timestamp", timestamp),
        ("signature", signature),
    ] {
        headers.insert(
            http::HeaderName::try_from(format!("{prefix}-{name}")).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn svix_headers(signature: &str) -> HeaderMap {
    headers("svix", SVIX_ID, &SVIX_TIMESTAMP.to_string(), signature)
}

/// A second implementation of the signature, written from the
/// specification with the `hmac` crate directly: base64 of
/// HMAC-SHA256(base64-decoded key after `whsec_`, "{id}.{timestamp}.{body}").
fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[test]
fn svix_documented_example_verifies() {
    let result = verify_webhook(
        &svix_headers(SVIX_SIGNATURE),
        SVIX_PAYLOAD.as_bytes(),
        &secret(SVIX_SECRET),
        SVIX_TIMESTAMP,
    );
    assert_eq!(result, Ok(()));
}

#[test]
fn the_second_implementation_agrees_with_the_documented_example() {
    assert_eq!(
        sign(
            SVIX_SECRET,
            SVIX_ID,
            SVIX_TIMESTAMP,
            SVIX_PAYLOAD.as_bytes()
        ),
        SVIX_SIGNATURE
    );
}

#[test]
fn a_changed_body_id_or_timestamp_matches_no_signature() {
    let key = secret(SVIX_SECRET);
    let tampered = r#"{"test": 2432232315}"#;
    assert_eq!(
        verify_webhook(
            &svix_headers(SVIX_SIGNATURE),
            tampered.as_bytes(),
            &key,
            SVIX_TIMESTAMP
        ),
        Err(WebhookError::NoMatchingSignature)
    );
    let other_id = headers(
        "svix",
        "msg_other",
        &SVIX_TIMESTAMP.to_string(),
        SVIX_SIGNATURE,
    );
    assert_eq!(
        verify_webhook(&other_id, SVIX_PAYLOAD.as_bytes(), &key, SVIX_TIMESTAMP),
        Err(WebhookError::NoMatchingSignature)
    );
    let other_time = headers(
        "svix",
        SVIX_ID,
        &(SVIX_TIMESTAMP + 1).to_string(),
        SVIX_SIGNATURE,
    );
    assert_eq!(
        verify_webhook(&other_time, SVIX_PAYLOAD.as_bytes(), &key, SVIX_TIMESTAMP),
        Err(WebhookError::NoMatchingSignature)
    );
}

#[test]
fn another_secret_matches_no_signature() {
    let other = "whsec_".to_string() + &STANDARD.encode(b"another key of some length");
    assert_eq!(
        verify_webhook(
            &svix_headers(SVIX_SIGNATURE),
            SVIX_PAYLOAD.as_bytes(),
            &secret(&other),
            SVIX_TIMESTAMP
        ),
        Err(WebhookError::NoMatchingSignature)
    );
}

#[test]
fn any_v1_signature_of_the_list_may_match() {
    let key = secret(SVIX_SECRET);
    let body = SVIX_PAYLOAD.as_bytes();
    for list in [
        format!("v1,bm90IHRoaXMgb25l {SVIX_SIGNATURE}"),
        format!("v1a,xyz {SVIX_SIGNATURE} v1,bm90IHRoaXMgb25l"),
        format!("garbage v1,%%% {SVIX_SIGNATURE}"),
    ] {
        assert_eq!(
            verify_webhook(&svix_headers(&list), body, &key, SVIX_TIMESTAMP),
            Ok(()),
            "{list}"
        );
    }
    // The right bytes under another version are no signature.
    let v2 = SVIX_SIGNATURE.replacen("v1,", "v2,", 1);
    assert_eq!(
        verify_webhook(&svix_headers(&v2), body, &key, SVIX_TIMESTAMP),
        Err(WebhookError::NoMatchingSignature)
    );
    assert_eq!(
        verify_webhook(&svix_headers(""), body, &key, SVIX_TIMESTAMP),
        Err(WebhookError::NoMatchingSignature)
    );
}

#[test]
fn the_unbranded_header_names_are_accepted() {
    let headers = headers(
        "webhook",
        SVIX_ID,
        &SVIX_TIMESTAMP.to_string(),
        SVIX_SIGNATURE,
    );
    assert_eq!(
        verify_webhook(
            &headers,
            SVIX_PAYLOAD.as_bytes(),
            &secret(SVIX_SECRET),
            SVIX_TIMESTAMP
        ),
        Ok(())
    );
}

#[test]
fn the_timestamp_may_be_five_minutes_off_either_way_and_no_more() {
    let key = secret(SVIX_SECRET);
    let body = SVIX_PAYLOAD.as_bytes();
    let signed = svix_headers(SVIX_SIGNATURE);
    for now in [
        SVIX_TIMESTAMP - TOLERANCE_SECONDS,
        SVIX_TIMESTAMP + TOLERANCE_SECONDS,
    ] {
        assert_eq!(verify_webhook(&signed, body, &key, now), Ok(()));
    }
    assert_eq!(
        verify_webhook(&signed, body, &key, SVIX_TIMESTAMP + TOLERANCE_SECONDS + 1),
        Err(WebhookError::TooOld)
    );
    assert_eq!(
        verify_webhook(&signed, body, &key, SVIX_TIMESTAMP - TOLERANCE_SECONDS - 1),
        Err(WebhookError::TooNew)
    );
    // Far from now in either direction, without overflowing.
    for (timestamp, expected) in [
        (i64::MIN, WebhookError::TooOld),
        (i64::MAX, WebhookError::TooNew),
    ] {
        let headers = headers("svix", SVIX_ID, &timestamp.to_string(), SVIX_SIGNATURE);
        assert_eq!(
            verify_webhook(&headers, body, &key, SVIX_TIMESTAMP),
            Err(expected)
        );
    }
}

#[test]
fn missing_headers_and_malformed_timestamps_are_refused() {
    let key = secret(SVIX_SECRET);
    let body = SVIX_PAYLOAD.as_bytes();
    for missing in ["svix-id", "svix-timestamp", "svix-signature"] {
        let mut headers = svix_headers(SVIX_SIGNATURE);
        headers.remove(missing);
        assert_eq!(
            verify_webhook(&headers, body, &key, SVIX_TIMESTAMP),
            Err(WebhookError::MissingHeader(missing))
        );
    }
    for timestamp in ["soon", "1614265330.5", " 1614265330", ""] {
        let headers = headers("svix", SVIX_ID, timestamp, SVIX_SIGNATURE);
        assert_eq!(
            verify_webhook(&headers, body, &key, SVIX_TIMESTAMP),
            Err(WebhookError::MalformedTimestamp),
            "{timestamp:?}"
        );
    }
}

#[test]
fn a_clerk_event_signed_by_the_second_implementation_verifies() {
    let key = "whsec_".to_string() + &STANDARD.encode(b"a clerk signing key, 24+ bytes");
    let body = json!({
        "data": { "deleted": true, "id": "user_29wBMCtzATuFJut8jO2VNTVekS4", "object": "user" },
        "object": "event",
        "type": "user.deleted"
    })
    .to_string();
    let now = 1_767_225_600;
    let signature = sign(&key, "msg_2a1b", now, body.as_bytes());
    let headers = headers("svix", "msg_2a1b", &now.to_string(), &signature);
    assert_eq!(
        verify_webhook(&headers, body.as_bytes(), &secret(&key), now + 10),
        Ok(())
    );
    // The prefix is optional, as in the Svix libraries.
    let bare = key.trim_start_matches("whsec_");
    assert_eq!(
        verify_webhook(&headers, body.as_bytes(), &secret(bare), now),
        Ok(())
    );
}

fn settings_of(
    value: Option<&str>,
) -> Result<Option<ClerkWebhookSettings>, crate::settings::ConfigError> {
    let value = value.map(str::to_string);
    ClerkWebhookSettings::from_lookup(&move |name: &str| {
        (name == "CLERK_WEBHOOK_SECRET")
            .then(|| value.clone())
            .flatten()
    })
}

#[test]
fn the_secret_is_optional_checked_at_start_and_never_shown() {
    assert!(settings_of(None).unwrap().is_none());
    let settings = settings_of(Some(SVIX_SECRET)).unwrap().unwrap();
    assert_eq!(settings.secret.expose_secret(), SVIX_SECRET);
    assert!(!format!("{settings:?}").contains("MfKQ9r8"));
    for bad in ["whsec_not base64!", "whsec_"] {
        let error = settings_of(Some(bad)).unwrap_err();
        assert_eq!(error.variable(), "CLERK_WEBHOOK_SECRET");
        assert!(!error.reason().contains("not base64!"), "{error}");
    }
}

fn event(value: serde_json::Value) -> ClerkEvent {
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_user_deleted_event_names_its_user_and_others_name_nobody() {
    let deleted =
        event(json!({ "type": "user.deleted", "data": { "id": "user_1", "deleted": true } }));
    assert_eq!(deleted.deleted_user().unwrap().unwrap().as_str(), "user_1");
    let created = event(json!({ "type": "user.created", "data": { "id": "user_1" } }));
    assert_eq!(created.deleted_user(), Ok(None));
    let bare = event(json!({ "type": "session.ended" }));
    assert_eq!(bare.deleted_user(), Ok(None));
    for data in [json!({}), json!({ "id": 7 }), json!({ "id": "" })] {
        let unnamed = event(json!({ "type": "user.deleted", "data": data }));
        assert_eq!(unnamed.deleted_user(), Err(InvalidIdentifier::Empty));
    }
    let long = event(json!({ "type": "user.deleted", "data": { "id": "u".repeat(201) } }));
    assert_eq!(long.deleted_user(), Err(InvalidIdentifier::TooLong));
}
