//! Feature flags and the wizard's flow definition, read from Vercel Edge Config
//! or, locally, from a JSON file in the repository.
//!
//! - [`edge_config`]: the HTTP client for Edge Config's read API.
//! - [`items`]: the parsed items ([`EdgeConfig`]); the flow's shape is the
//!   domain's, through [`FlowItem`].
//! - [`store`]: the per-process cache routes read through ([`EdgeConfigStore::snapshot`]).
//! - [`value`]: flag values and their evaluation (percentage rollouts).

pub mod edge_config;
pub mod items;
pub mod store;
pub mod value;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::settings::{ConfigError, Lookup, Profile, SecretString, parse_millis};

pub use edge_config::{EdgeConfigClient, EdgeConfigError};
pub use items::{EdgeConfig, FlowItem, InvalidItems, ItemProblem};
pub use store::{EdgeConfigStore, Freshness, Snapshot};
pub use value::{FlagValue, Percent, rollout_bucket};

/// Timing of the Edge Config cache and client.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagsSettings {
    /// How long a fetched snapshot is served before a background refresh.
    pub ttl: Duration,
    /// Timeout of one request to Edge Config.
    pub request_timeout: Duration,
}

impl FlagsSettings {
    pub fn from_lookup(lookup: &dyn Lookup) -> Result<Self, ConfigError> {
        Ok(Self {
            ttl: parse_millis(lookup, "EDGE_CONFIG_TTL_MS", 10_000, 0..=3_600_000)?,
            request_timeout: parse_millis(lookup, "EDGE_CONFIG_TIMEOUT_MS", 2000, 1..=30_000)?,
        })
    }
}

impl Default for FlagsSettings {
    fn default() -> Self {
        Self {
            ttl: store::DEFAULT_TTL,
            request_timeout: edge_config::DEFAULT_TIMEOUT,
        }
    }
}

impl<F: FlowItem> EdgeConfigStore<F> {
    /// The store for the configured source; `http` is the process's shared client.
    pub fn from_settings(
        source: &EdgeConfigSource,
        settings: &FlagsSettings,
        http: reqwest::Client,
    ) -> Self {
        match source {
            EdgeConfigSource::LocalFile(path) => {
                EdgeConfigStore::local_file(path.clone(), store::FILE_CHECK_INTERVAL)
            }
            EdgeConfigSource::Remote { base_url, token } => EdgeConfigStore::remote(
                EdgeConfigClient::new(
                    http,
                    base_url.clone(),
                    token.clone(),
                    settings.request_timeout,
                ),
                settings.ttl,
            ),
        }
    }
}

/// Where the Edge Config items come from.
#[derive(Debug, Clone)]
pub enum EdgeConfigSource {
    /// A local JSON file holding the items (the default flow and flags).
    LocalFile(PathBuf),
    /// Vercel's Edge Config read API.
    Remote { base_url: Url, token: SecretString },
}

const EDGE_CONFIG_HOST: &str = "https://edge-config.vercel.com/";
/// The items the dev server and tests read when no Edge Config is connected.
pub const LOCAL_EDGE_CONFIG_FILE: &str = "config/edge-config.json";

impl EdgeConfigSource {
    /// `EDGE_CONFIG` (or `GLOBAL_CONFIG`), else the local file
    /// `EDGE_CONFIG_FILE`, in either profile: a deployment without Edge Config
    /// serves the flow shipped in the repository.
    pub fn from_lookup(lookup: &dyn Lookup, _profile: Profile) -> Result<Self, ConfigError> {
        match lookup
            .get("EDGE_CONFIG")
            .or_else(|| lookup.get("GLOBAL_CONFIG"))
        {
            Some(connection) => Self::parse_connection_string(&connection)
                .map_err(|problem| ConfigError::new("EDGE_CONFIG", problem)),
            None => Ok(EdgeConfigSource::LocalFile(PathBuf::from(
                lookup
                    .get("EDGE_CONFIG_FILE")
                    .unwrap_or_else(|| LOCAL_EDGE_CONFIG_FILE.to_string()),
            ))),
        }
    }

    /// Parses either form of the connection string Vercel injects:
    /// `https://edge-config.vercel.com/ecfg_…?token=…` or `edge-config:id=ecfg_…&token=…`.
    pub fn parse_connection_string(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Some(pairs) = raw.strip_prefix("edge-config:") {
            let mut id = None;
            let mut token = None;
            for (key, value) in url::form_urlencoded::parse(pairs.as_bytes()) {
                match key.as_ref() {
                    "id" => id = Some(value.into_owned()),
                    "token" => token = Some(value.into_owned()),
                    _ => {}
                }
            }
            let id = id
                .filter(|id| is_edge_config_id(id))
                .ok_or("has no valid `id`")?;
            let token = token.filter(|t| !t.is_empty()).ok_or("has no `token`")?;
            let base_url = Url::parse(EDGE_CONFIG_HOST)
                .and_then(|host| host.join(&id))
                .map_err(|_| "has an unusable id".to_string())?;
            return Ok(EdgeConfigSource::Remote {
                base_url,
                token: SecretString::from(token),
            });
        }
        let mut url = Url::parse(raw).map_err(|_| "is neither a URL nor `edge-config:…`")?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("must be an https URL".into());
        }
        let token = url
            .query_pairs()
            .find(|(key, _)| key == "token")
            .map(|(_, value)| value.into_owned())
            .filter(|token| !token.is_empty())
            .ok_or("has no `token` query parameter")?;
        let id_ok = url
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .is_some_and(is_edge_config_id);
        if !id_ok {
            return Err("does not end in an Edge Config id (ecfg_…)".into());
        }
        url.set_query(None);
        Ok(EdgeConfigSource::Remote {
            base_url: url,
            token: SecretString::from(token),
        })
    }
}

fn is_edge_config_id(id: &str) -> bool {
    id.starts_with("ecfg_")
        && id.len() > 5
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod connection_string_tests {
    use super::*;
    use crate::settings::ExposeSecret;

    /// The base URL and token of a connection string that must parse as remote.
    fn remote(raw: &str) -> (String, String) {
        let EdgeConfigSource::Remote { base_url, token } =
            EdgeConfigSource::parse_connection_string(raw).unwrap()
        else {
            panic!("expected a remote source");
        };
        (base_url.to_string(), token.expose_secret().to_string())
    }

    #[test]
    fn the_url_form_of_the_connection_string_is_parsed() {
        let (base_url, token) = remote("https://edge-config.vercel.com/ecfg_abc123?token=tok-1");
        assert_eq!(base_url, "https://edge-config.vercel.com/ecfg_abc123");
        assert_eq!(token, "tok-1");
    }

    #[test]
    fn the_key_value_form_of_the_connection_string_is_parsed() {
        let (base_url, token) = remote("edge-config:id=ecfg_abc123&token=tok-2");
        assert_eq!(base_url, "https://edge-config.vercel.com/ecfg_abc123");
        assert_eq!(token, "tok-2");
    }

    #[test]
    fn a_connection_string_without_a_token_is_rejected() {
        for raw in [
            "https://edge-config.vercel.com/ecfg_abc123",
            "edge-config:id=ecfg_abc123",
            "edge-config:token=t",
            "https://edge-config.vercel.com/not-an-id?token=t",
            "ftp://edge-config.vercel.com/ecfg_abc?token=t",
        ] {
            assert!(
                EdgeConfigSource::parse_connection_string(raw).is_err(),
                "{raw}"
            );
        }
    }
}
