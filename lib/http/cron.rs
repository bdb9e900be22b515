//! Scheduled requests: Vercel's cron jobs call a route with
//! `Authorization: Bearer <CRON_SECRET>` (the project's `CRON_SECRET`), and
//! [`CronJob`] lets only such a request through.
//!
//! The secret is compared in constant time ([`secret_matches`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};

use crate::http::error::ApiError;
use crate::settings::secret_matches;
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
            Some(token) if secret_matches(token, secret) => Ok(CronJob),
            Some(_) => Err(ApiError::Unauthorized {
                detail: "the cron secret does not match".into(),
                www_authenticate: HeaderValue::from_static(
                    "Bearer realm=\"onboarding\", error=\"invalid_token\"",
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::{SecretString, secret_matches};

    #[test]
    fn only_the_exact_secret_matches() {
        let secret = SecretString::from("cron-secret-0123456789");
        assert!(secret_matches("cron-secret-0123456789", &secret));
        assert!(!secret_matches("cron-secret-012345678", &secret));
        assert!(!secret_matches("cron-secret-01234567890", &secret));
        assert!(!secret_matches("", &secret));
        assert!(!secret_matches("CRON-SECRET-0123456789", &secret));
    }
}
