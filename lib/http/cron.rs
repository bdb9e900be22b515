//! Scheduled requests: Vercel's cron jobs call a route with
//! `Authorization: Bearer <CRON_SECRET>` (the project's `CRON_SECRET`), and
//! [`CronJob`] lets only such a request through.
//!
//! The secret is compared in constant time: both it and what the request
//! presents are MACed under one key and the tags compared with `hmac`'s
//! `verify_slice`, so neither the position of the first differing byte nor
//! the secret's length shows in the time the answer takes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::http::error::ApiError;
use crate::settings::{ExposeSecret, SecretString};
use crate::state::AppState;

/// A request Vercel's scheduler sent: it presented the cron secret.
#[derive(Debug)]
pub struct CronJob;

impl FromRequestParts<AppState> for CronJob {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(secret) = &state.settings().http.cron_secret else {
            tracing::warn!("a cron job was called but CRON_SECRET is unset; nothing ran");
            return Err(ApiError::ServiceUnavailable(
                "the purge is not configured".into(),
            ));
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match presented {
            None => Err(ApiError::Unauthorized {
                detail: "send the cron secret as `Authorization: Bearer <CRON_SECRET>`".into(),
                www_authenticate: HeaderValue::from_static("Bearer realm=\"onboarding\""),
            }),
            Some(token) if matches_secret(token, secret) => Ok(CronJob),
            Some(_) => Err(ApiError::Unauthorized {
                detail: "the cron secret does not match".into(),
                www_authenticate: HeaderValue::from_static(
                    "Bearer realm=\"onboarding\", error=\"invalid_token\"",
                ),
            }),
        }
    }
}

/// Whether `presented` is the secret, in time independent of where they differ.
fn matches_secret(presented: &str, secret: &SecretString) -> bool {
    let expected = tag(secret.expose_secret()).finalize().into_bytes();
    tag(presented).verify_slice(&expected).is_ok()
}

fn tag(value: &str) -> Hmac<Sha256> {
    // Any fixed key will do: the MAC only makes the comparison constant-time.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"onboarding cron secret")
        .expect("HMAC takes keys of any length");
    mac.update(value.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        let secret = SecretString::from("cron-secret-0123456789");
        assert!(matches_secret("cron-secret-0123456789", &secret));
        assert!(!matches_secret("cron-secret-012345678", &secret));
        assert!(!matches_secret("cron-secret-01234567890", &secret));
        assert!(!matches_secret("", &secret));
        assert!(!matches_secret("CRON-SECRET-0123456789", &secret));
    }
}
