//! Settings primitives: where values come from, how numbers and durations are
//! read, the one configuration error and the one secret type.
//!
//! The bottom layer of the crate: it imports nothing of it. Each store and
//! client owns a `Settings::from_lookup` built from these pieces;
//! `config` only composes them.

use std::fmt;
use std::time::Duration;

pub use secrecy::{ExposeSecret, SecretString};

/// A configuration problem, naming the variable at fault. The problem never
/// contains the value of a secret variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration variable {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }

    /// The environment variable that is missing or invalid.
    pub fn variable(&self) -> &'static str {
        self.variable
    }

    /// Human-readable explanation (never includes secret values).
    pub fn reason(&self) -> &str {
        &self.problem
    }
}

/// Where configuration values come from: the process environment, or a map in
/// tests. Blank values count as unset.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name).filter(|value| !value.trim().is_empty())
    }
}

/// Reads the process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Whether missing settings fall back to the local development services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A deployed function: required variables must be set.
    Deployed,
    /// The dev server and tests: local PostgreSQL, Redis and Edge Config file.
    Local,
}

impl Profile {
    /// `value` in the local profile, nothing when deployed.
    pub fn local_default(self, value: &str) -> Option<String> {
        (self == Profile::Local).then(|| value.to_string())
    }
}

/// A secret read from `variable`, if set.
/// Whether `presented` is the secret, in time independent of where they
/// differ or of the secret's length: both are MACed under one key and the
/// tags compared with `hmac`'s constant-time `verify_slice`.
pub fn secret_matches(presented: &str, secret: &SecretString) -> bool {
    use hmac::{Hmac, Mac};
    let tag = |value: &str| {
        // Any fixed key will do: the MAC only makes the comparison constant-time.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"onboarding shared secret")
            .expect("HMAC takes keys of any length");
        mac.update(value.as_bytes());
        mac
    };
    let expected = tag(secret.expose_secret()).finalize().into_bytes();
    tag(presented).verify_slice(&expected).is_ok()
}

/// A secret sent verbatim in a header by a caller the deployment trusts
/// (`CRON_SECRET`, `TRUSTED_PROXY_SECRET`): long enough not to be guessed,
/// and printable, as a header must be.
pub fn header_secret(
    lookup: &dyn Lookup,
    variable: &'static str,
) -> Result<Option<SecretString>, ConfigError> {
    let Some(value) = secret(lookup, variable) else {
        return Ok(None);
    };
    let text = value.expose_secret();
    if text.len() < 16 {
        return Err(ConfigError::new(variable, "must be at least 16 characters"));
    }
    if !text
        .bytes()
        .all(|byte| byte == b' ' || byte.is_ascii_graphic())
    {
        return Err(ConfigError::new(
            variable,
            "must be printable ASCII, as it travels in a header",
        ));
    }
    Ok(Some(value))
}

pub fn secret(lookup: &dyn Lookup, variable: &str) -> Option<SecretString> {
    lookup.get(variable).map(SecretString::from)
}

/// Reads a number within `range`, or `default` when unset; the error names the variable.
pub fn parse_number<T>(
    lookup: &dyn Lookup,
    variable: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = lookup.get(variable) else {
        return Ok(default);
    };
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(variable, format!("`{raw}` is not a number")))?;
    if !range.contains(&value) {
        return Err(ConfigError::new(
            variable,
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

/// A duration given in milliseconds, within `range` (in milliseconds).
pub fn parse_millis(
    lookup: &dyn Lookup,
    variable: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    parse_number(lookup, variable, default, range).map(Duration::from_millis)
}

/// A duration given in seconds, within `range` (in seconds).
pub fn parse_seconds(
    lookup: &dyn Lookup,
    variable: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    parse_number(lookup, variable, default, range).map(Duration::from_secs)
}

/// A lookup over fixed pairs, for tests.
#[cfg(test)]
pub(crate) fn lookup_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookup_of as lookup;

    #[test]
    fn blank_values_count_as_unset() {
        assert_eq!(lookup(&[("A", "  ")]).get("A"), None);
        assert_eq!(parse_number(&lookup(&[("A", " ")]), "A", 7, 1..=9), Ok(7));
    }

    #[test]
    fn a_number_outside_its_range_names_the_variable() {
        let error = parse_number(&lookup(&[("A", "10")]), "A", 7, 1..=9).unwrap_err();
        assert_eq!(error.variable(), "A");
        assert_eq!(
            parse_millis(&lookup(&[("A", "5")]), "A", 7, 1..=9),
            Ok(Duration::from_millis(5))
        );
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let secret = secret(&lookup(&[("S", "s3cr3t")]), "S").unwrap();
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        assert_eq!(secret.expose_secret(), "s3cr3t");
    }
}
