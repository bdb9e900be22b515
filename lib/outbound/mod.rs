//! Outbound calls the outbox delivers: signed webhooks to the deployment's
//! receivers ([`signing`], Standard Webhooks) and, opted in, the identity
//! provider's user metadata ([`idp`]: Clerk's Backend API or Supabase's
//! admin API). One attempt is one HTTP call bounded by `OUTBOUND_TIMEOUT_MS`;
//! retries, backoff and order are the outbox's (the `outbox` module, a layer up).

pub mod idp;
pub mod signing;

use std::time::Duration;

use crate::settings::{ConfigError, Lookup, parse_millis, parse_number, secret};

pub use idp::{IdpKind, IdpSettings};
pub use signing::SigningKey;

/// Where events go and how they are retried.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Webhook receivers (`OUTBOUND_WEBHOOK_URLS`); every event goes to each.
    pub webhook_urls: Vec<url::Url>,
    /// The Standard Webhooks secret (`OUTBOUND_WEBHOOK_SECRET`); required
    /// with receivers.
    pub signing_key: Option<SigningKey>,
    /// Limit of one HTTP call (`OUTBOUND_TIMEOUT_MS`, default 3000).
    pub timeout: Duration,
    /// Attempts after which an event is dead-lettered (`OUTBOX_MAX_ATTEMPTS`,
    /// default 15).
    pub max_attempts: i32,
    /// The first retry's delay, doubled per attempt up to an hour
    /// (`OUTBOX_BACKOFF_BASE_MS`, default 10000).
    pub backoff_base: Duration,
    /// `None` unless `IDP_SYNC` is on.
    pub idp: Option<IdpSettings>,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            webhook_urls: Vec::new(),
            signing_key: None,
            timeout: Duration::from_millis(3_000),
            max_attempts: 15,
            backoff_base: Duration::from_millis(10_000),
            idp: None,
        }
    }
}

/// https, or http to this machine (tests, local receivers).
pub(crate) fn parse_url(variable: &'static str, raw: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|error| ConfigError::new(variable, format!("`{raw}` is not a URL: {error}")))?;
    let local = url
        .host_str()
        .is_some_and(|host| host == "localhost" || host == "127.0.0.1" || host == "[::1]");
    if !(url.scheme() == "https" || (url.scheme() == "http" && local)) {
        return Err(ConfigError::new(
            variable,
            format!("`{raw}` must be https (http only for localhost)"),
        ));
    }
    Ok(url)
}

impl OutboundSettings {
    pub fn from_lookup(lookup: &dyn Lookup) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let webhook_urls = lookup
            .get("OUTBOUND_WEBHOOK_URLS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| parse_url("OUTBOUND_WEBHOOK_URLS", url))
            .collect::<Result<Vec<_>, _>>()?;
        let signing_key = secret(lookup, "OUTBOUND_WEBHOOK_SECRET")
            .map(|secret| SigningKey::parse("OUTBOUND_WEBHOOK_SECRET", &secret))
            .transpose()?;
        if !webhook_urls.is_empty() && signing_key.is_none() {
            return Err(ConfigError::new(
                "OUTBOUND_WEBHOOK_SECRET",
                "is required when OUTBOUND_WEBHOOK_URLS is set: every delivery is signed",
            ));
        }
        Ok(Self {
            webhook_urls,
            signing_key,
            timeout: parse_millis(lookup, "OUTBOUND_TIMEOUT_MS", 3_000, 100..=4_000)?,
            max_attempts: parse_number(
                lookup,
                "OUTBOX_MAX_ATTEMPTS",
                defaults.max_attempts,
                1..=100,
            )?,
            backoff_base: parse_millis(lookup, "OUTBOX_BACKOFF_BASE_MS", 10_000, 100..=3_600_000)?,
            idp: IdpSettings::from_lookup(lookup)?,
        })
    }
}

/// One place an event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Webhook(url::Url),
    Idp(IdpKind),
}

impl Destination {
    /// The name an acknowledgement is recorded under (`delivered_to`).
    pub fn key(&self) -> String {
        match self {
            Destination::Webhook(url) => format!("webhook:{url}"),
            Destination::Idp(kind) => format!("idp:{}", kind.as_str()),
        }
    }
}

/// What one call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// A 2xx.
    Acknowledged,
    /// Anything else; retried by the outbox, not before `retry_after` when
    /// the other side said so (429 or 503 with `Retry-After`).
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// An event to send: its id (the `webhook-id`), user, type and body.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub event_type: &'a str,
    pub payload: &'a serde_json::Value,
}

/// The client: built once per process.
#[derive(Clone)]
pub struct Outbound {
    settings: OutboundSettings,
    http: reqwest::Client,
}

impl Outbound {
    pub fn new(settings: OutboundSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(2)))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { settings, http })
    }

    pub fn settings(&self) -> &OutboundSettings {
        &self.settings
    }

    /// Whether any event has anywhere to go.
    pub fn is_configured(&self) -> bool {
        !self.settings.webhook_urls.is_empty() || self.settings.idp.is_some()
    }

    /// Where an event of `event_type` goes: every receiver, and the identity
    /// provider for completions.
    pub fn destinations(&self, event_type: &str) -> Vec<Destination> {
        let mut all: Vec<Destination> = self
            .settings
            .webhook_urls
            .iter()
            .cloned()
            .map(Destination::Webhook)
            .collect();
        if let Some(idp) = &self.settings.idp
            && event_type == idp::SYNCED_EVENT
        {
            all.push(Destination::Idp(idp.kind));
        }
        all
    }

    /// One attempt to one destination.
    pub async fn send(&self, destination: &Destination, event: Outgoing<'_>) -> Sent {
        match destination {
            Destination::Webhook(url) => self.webhook(url, event).await,
            Destination::Idp(_) => match &self.settings.idp {
                Some(settings) => idp::sync(&self.http, settings, event).await,
                None => Sent::Failed {
                    error: "identity provider sync is off".into(),
                    retry_after: None,
                },
            },
        }
    }

    async fn webhook(&self, url: &url::Url, event: Outgoing<'_>) -> Sent {
        let Some(key) = &self.settings.signing_key else {
            return Sent::Failed {
                error: "OUTBOUND_WEBHOOK_SECRET is unset".into(),
                retry_after: None,
            };
        };
        let body = serde_json::to_vec(event.payload).expect("JSON values serialize");
        let timestamp = chrono::Utc::now().timestamp();
        let signature = key.sign(event.id, timestamp, &body);
        let response = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::USER_AGENT, "onboarding-webhooks/1")
            .header("webhook-id", event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        outcome(response).await
    }
}

/// A response as a [`Sent`].
pub(crate) async fn outcome(response: Result<reqwest::Response, reqwest::Error>) -> Sent {
    match response {
        Ok(response) if response.status().is_success() => Sent::Acknowledged,
        Ok(response) => {
            let status = response.status();
            let retry_after = retry_after(response.headers());
            Sent::Failed {
                error: format!("answered {status}"),
                retry_after,
            }
        }
        Err(error) if error.is_timeout() => Sent::Failed {
            error: "timed out".into(),
            retry_after: None,
        },
        Err(error) => Sent::Failed {
            error: format!("unreachable: {}", without_url(&error)),
            retry_after: None,
        },
    }
}

/// An error's text without the URL (which may carry a user id).
fn without_url(error: &reqwest::Error) -> String {
    let mut error_text = String::new();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        if !error_text.is_empty() {
            error_text.push_str(": ");
        }
        error_text.push_str(&inner.to_string());
        cause = inner.source();
    }
    if error_text.is_empty() {
        "request failed".into()
    } else {
        error_text
    }
}

/// `Retry-After` as seconds or an HTTP date, capped at an hour.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
    };
    Some(wait.min(Duration::from_secs(3_600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::lookup_of as lookup;

    #[test]
    fn nothing_is_configured_by_default() {
        let settings = OutboundSettings::from_lookup(&lookup(&[])).unwrap();
        assert!(settings.webhook_urls.is_empty());
        assert!(settings.idp.is_none());
        assert_eq!(settings.max_attempts, 15);
    }

    #[test]
    fn receivers_need_a_secret_and_https() {
        let error = OutboundSettings::from_lookup(&lookup(&[(
            "OUTBOUND_WEBHOOK_URLS",
            "https://example.com/hook",
        )]))
        .unwrap_err();
        assert_eq!(error.variable(), "OUTBOUND_WEBHOOK_SECRET");
        let error = OutboundSettings::from_lookup(&lookup(&[
            ("OUTBOUND_WEBHOOK_URLS", "http://example.com/hook"),
            (
                "OUTBOUND_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ]))
        .unwrap_err();
        assert_eq!(error.variable(), "OUTBOUND_WEBHOOK_URLS");
        let settings = OutboundSettings::from_lookup(&lookup(&[
            (
                "OUTBOUND_WEBHOOK_URLS",
                "https://example.com/a, http://127.0.0.1:9/b",
            ),
            (
                "OUTBOUND_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ]))
        .unwrap();
        assert_eq!(settings.webhook_urls.len(), 2);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
