//! Clerk webhook deliveries as Svix signs them, for the tests: signed here
//! with the `hmac` crate from the specification, independently of
//! `onboarding::auth::verify_webhook`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signing secret test apps are configured with (`CLERK_WEBHOOK_SECRET`).
pub const TEST_WEBHOOK_SECRET: &str = "whsec_dGVzdCBjbGVyayB3ZWJob29rIHNpZ25pbmcga2V5IQ==";

/// The path of the webhook.
pub const CLERK_WEBHOOK: &str = "/api/webhooks/clerk";

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under `secret`.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("a base64 key after whsec_");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The three Svix headers of a delivery of `body`, signed at `timestamp`.
pub fn signed_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("svix-id", id.to_string()),
        ("svix-timestamp", timestamp.to_string()),
        ("svix-signature", signature(secret, id, timestamp, body)),
    ]
}

/// A `user.deleted` event for `user`, as Clerk sends it.
pub fn user_deleted(user: &str) -> String {
    serde_json::json!({
        "data": { "deleted": true, "id": user, "object": "user" },
        "object": "event",
        "type": "user.deleted",
        "timestamp": 1_767_225_600_000_i64
    })
    .to_string()
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
