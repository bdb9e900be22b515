//! Webhooks from the identity provider. Clerk delivers them through Svix,
//! signed as Standard Webhooks are: [`verify_webhook`] checks one delivery (its
//! headers, raw body, the signing secret and the time now, nothing else), and
//! [`ClerkEvent`] reads the envelope it carries.
//!
//! A delivery carries `svix-id`, `svix-timestamp` (seconds since the epoch)
//! and `svix-signature`, or the same as `webhook-id`, `webhook-timestamp`,
//! `webhook-signature`. The signed content is `"{id}.{timestamp}.{raw body}"`,
//! signed with HMAC-SHA256 under the secret `whsec_<base64 key>`; the
//! signature header is a space-separated list of `v1,<base64 signature>`
//! (several while a secret is being rotated), any of which may match.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde::Deserialize;
use sha2::Sha256;

use crate::auth::error::InvalidIdentifier;
use crate::auth::ids::UserId;
use crate::settings::{ConfigError, ExposeSecret, Lookup, SecretString, secret};

/// How far a delivery's timestamp may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// The prefix of a Svix signing secret; the base64 key follows it.
const SECRET_PREFIX: &str = "whsec_";

/// The variable holding the Clerk webhook's signing secret.
const SECRET_VARIABLE: &str = "CLERK_WEBHOOK_SECRET";

/// The Clerk webhook's settings; `None` from [`ClerkWebhookSettings::from_lookup`]
/// when `CLERK_WEBHOOK_SECRET` is unset (the webhook then answers 503).
#[derive(Debug, Clone)]
pub struct ClerkWebhookSettings {
    /// `whsec_<base64>`, as the Clerk dashboard shows it.
    pub secret: SecretString,
}

impl ClerkWebhookSettings {
    /// Reads `CLERK_WEBHOOK_SECRET`; a secret that is not `whsec_` (optional)
    /// followed by base64 fails here, at start, rather than on every delivery.
    pub fn from_lookup(lookup: &dyn Lookup) -> Result<Option<Self>, ConfigError> {
        let Some(secret) = secret(lookup, SECRET_VARIABLE) else {
            return Ok(None);
        };
        signing_key(&secret).map_err(|_| {
            ConfigError::new(
                SECRET_VARIABLE,
                "must be the signing secret as Clerk shows it: `whsec_` followed by base64",
            )
        })?;
        Ok(Some(Self { secret }))
    }
}

/// Why a delivery was refused. The messages name headers, never values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A header of the three is missing (under both its names) or not text.
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    #[error("the timestamp is not a whole number of seconds")]
    MalformedTimestamp,
    #[error("the timestamp is more than five minutes old")]
    TooOld,
    #[error("the timestamp is more than five minutes in the future")]
    TooNew,
    #[error("no `v1` signature matches")]
    NoMatchingSignature,
    /// The configured secret does not decode (checked at start, so not seen
    /// with settings read by [`ClerkWebhookSettings::from_lookup`]).
    #[error("the signing secret is not `whsec_` followed by base64")]
    BadSecret,
}

/// Checks that `body` was signed with `secret` at a time within
/// [`TOLERANCE_SECONDS`] of `now` (seconds since the epoch). Any `v1`
/// signature of the list may match; each is compared in constant time.
pub fn verify_webhook(
    headers: &HeaderMap,
    body: &[u8],
    secret: &SecretString,
    now: i64,
) -> Result<(), WebhookError> {
    let id = header(headers, "svix-id", "webhook-id")?;
    let timestamp = header(headers, "svix-timestamp", "webhook-timestamp")?;
    let signatures = header(headers, "svix-signature", "webhook-signature")?;
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| WebhookError::MalformedTimestamp)?;
    if now.saturating_sub(sent) > TOLERANCE_SECONDS {
        return Err(WebhookError::TooOld);
    }
    if sent.saturating_sub(now) > TOLERANCE_SECONDS {
        return Err(WebhookError::TooNew);
    }
    let key = signing_key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| STANDARD.decode(signature).ok())
        // `verify_slice` compares in constant time.
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if matches {
        Ok(())
    } else {
        Err(WebhookError::NoMatchingSignature)
    }
}

/// The header under its `svix-` name, else its `webhook-` name.
fn header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
    unbranded: &'static str,
) -> Result<&'a str, WebhookError> {
    headers
        .get(name)
        .or_else(|| headers.get(unbranded))
        .and_then(|value| value.to_str().ok())
        .ok_or(WebhookError::MissingHeader(name))
}

/// The HMAC key: the base64 after `whsec_` (the prefix is optional, as the
/// Svix libraries have it).
fn signing_key(secret: &SecretString) -> Result<Vec<u8>, WebhookError> {
    let raw = secret.expose_secret().trim();
    let encoded = raw.strip_prefix(SECRET_PREFIX).unwrap_or(raw);
    match STANDARD.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err(WebhookError::BadSecret),
    }
}

/// The envelope of a Clerk event: `{"type": "user.deleted", "data": {...}, ...}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClerkEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl ClerkEvent {
    /// The event type this backend acts on.
    pub const USER_DELETED: &'static str = "user.deleted";

    /// The user a `user.deleted` event names (`data.id`); `None` for every
    /// other type. A `user.deleted` without a usable id is an error: a
    /// missing or non-string id reads as empty.
    pub fn deleted_user(&self) -> Result<Option<UserId>, InvalidIdentifier> {
        if self.kind != Self::USER_DELETED {
            return Ok(None);
        }
        let id = self.data["id"].as_str().unwrap_or_default();
        UserId::parse(id).map(Some)
    }
}
