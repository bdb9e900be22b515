//! Identity-provider sync, opt-in (`IDP_SYNC=on`) for the `clerk` and
//! `supabase` presets: on `onboarding.completed` the user's metadata says so,
//! so the session token carries the claim and the Next.js middleware can
//! skip `GET /status`:
//!
//! - Clerk: `PATCH {CLERK_API_URL}/v1/users/{id}/metadata` with
//!   `{"public_metadata": {"onboardingComplete": true, "organizationId": …}}`
//!   (Clerk merges it into the user's public metadata), `Authorization:
//!   Bearer <CLERK_SECRET_KEY>`. The claim reaches the session token once
//!   the token's template includes `"metadata": "{{user.public_metadata}}"`.
//! - Supabase: `PUT {SUPABASE_URL}/auth/v1/admin/users/{id}` with
//!   `{"app_metadata": {"onboarding_complete": true, "organization_id": …}}`
//!   (merged into `app_metadata`, which every access token carries), with the
//!   service-role key as `apikey` and Bearer.

use crate::outbound::{Outgoing, Sent, outcome, parse_url};
use crate::settings::{ConfigError, ExposeSecret, Lookup, SecretString, secret};

/// The event that is synced.
pub const SYNCED_EVENT: &str = "onboarding.completed";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdpKind {
    Clerk,
    Supabase,
}

impl IdpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdpKind::Clerk => "clerk",
            IdpKind::Supabase => "supabase",
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdpSettings {
    pub kind: IdpKind,
    /// Without a trailing slash.
    pub base_url: String,
    pub secret_key: SecretString,
}

fn required(lookup: &dyn Lookup, variable: &'static str) -> Result<SecretString, ConfigError> {
    secret(lookup, variable).ok_or_else(|| {
        ConfigError::new(variable, "is required when IDP_SYNC is on for this preset")
    })
}

impl IdpSettings {
    /// `None` unless `IDP_SYNC` is `on`/`true`/`1`; then the preset
    /// (`AUTH_PROVIDER`) must be `clerk` or `supabase`.
    pub fn from_lookup(lookup: &dyn Lookup) -> Result<Option<Self>, ConfigError> {
        match lookup
            .get("IDP_SYNC")
            .map(|value| value.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("" | "off" | "false" | "0") => return Ok(None),
            Some("on" | "true" | "1") => {}
            Some(other) => {
                return Err(ConfigError::new(
                    "IDP_SYNC",
                    format!("`{other}` is not on or off"),
                ));
            }
        }
        let preset = lookup.get("AUTH_PROVIDER").unwrap_or_default();
        match preset.trim() {
            "clerk" => {
                let base = lookup
                    .get("CLERK_API_URL")
                    .unwrap_or_else(|| "https://api.clerk.com".into());
                parse_url("CLERK_API_URL", &base)?;
                Ok(Some(Self {
                    kind: IdpKind::Clerk,
                    base_url: base.trim().trim_end_matches('/').to_string(),
                    secret_key: required(lookup, "CLERK_SECRET_KEY")?,
                }))
            }
            "supabase" => {
                let base = lookup.get("SUPABASE_URL").ok_or_else(|| {
                    ConfigError::new(
                        "SUPABASE_URL",
                        "is required when IDP_SYNC is on for supabase",
                    )
                })?;
                parse_url("SUPABASE_URL", &base)?;
                Ok(Some(Self {
                    kind: IdpKind::Supabase,
                    base_url: base.trim().trim_end_matches('/').to_string(),
                    secret_key: required(lookup, "SUPABASE_SERVICE_ROLE_KEY")?,
                }))
            }
            other => Err(ConfigError::new(
                "IDP_SYNC",
                format!(
                    "the `{other}` preset has no metadata to sync; use AUTH_PROVIDER clerk or supabase"
                ),
            )),
        }
    }
}

/// The user's URL: the id is one path segment, escaped.
fn user_url(base: &str, prefix: &[&str], user_id: &str, suffix: &[&str]) -> Option<url::Url> {
    let mut url = url::Url::parse(base).ok()?;
    {
        let mut segments = url.path_segments_mut().ok()?;
        segments.pop_if_empty();
        segments.extend(prefix);
        segments.push(user_id);
        segments.extend(suffix);
    }
    Some(url)
}

/// How one provider takes the completion (the module's opening comment has
/// both requests in full).
struct MetadataWrite {
    method: reqwest::Method,
    /// The path before and after the user's id.
    path: (&'static [&'static str], &'static [&'static str]),
    /// The body's one field: the metadata the provider copies into its tokens.
    field: &'static str,
    /// The keys in that metadata, in the provider's own casing.
    complete_key: &'static str,
    organization_key: &'static str,
    /// Supabase's gateway wants the key as `apikey` too.
    key_as_apikey: bool,
}

impl IdpKind {
    fn metadata_write(self) -> MetadataWrite {
        match self {
            IdpKind::Clerk => MetadataWrite {
                method: reqwest::Method::PATCH,
                path: (&["v1", "users"], &["metadata"]),
                field: "public_metadata",
                complete_key: "onboardingComplete",
                organization_key: "organizationId",
                key_as_apikey: false,
            },
            IdpKind::Supabase => MetadataWrite {
                method: reqwest::Method::PUT,
                path: (&["auth", "v1", "admin", "users"], &[]),
                field: "app_metadata",
                complete_key: "onboarding_complete",
                organization_key: "organization_id",
                key_as_apikey: true,
            },
        }
    }
}

/// One attempt to write the completion into the user's metadata.
pub async fn sync(http: &reqwest::Client, settings: &IdpSettings, event: Outgoing<'_>) -> Sent {
    let write = settings.kind.metadata_write();
    let mut metadata = serde_json::Map::new();
    metadata.insert(write.complete_key.into(), true.into());
    if let Some(organization_id) = event
        .payload
        .pointer("/data/organizationId")
        .filter(|value| !value.is_null())
    {
        metadata.insert(write.organization_key.into(), organization_id.clone());
    }
    let body = serde_json::Map::from_iter([(write.field.to_string(), metadata.into())]);
    let key = settings.secret_key.expose_secret();
    let (before_id, after_id) = write.path;
    let request = user_url(&settings.base_url, before_id, event.user_id, after_id).map(|url| {
        let request = http.request(write.method, url).bearer_auth(key).json(&body);
        if write.key_as_apikey {
            request.header("apikey", key)
        } else {
            request
        }
    });
    let Some(request) = request else {
        return Sent::Failed {
            error: "the identity provider's URL cannot carry a user id".into(),
            retry_after: None,
        };
    };
    outcome(request.send().await).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::lookup_of as lookup;

    #[test]
    fn sync_is_off_unless_asked_and_needs_a_preset_with_metadata() {
        assert!(IdpSettings::from_lookup(&lookup(&[])).unwrap().is_none());
        let error = IdpSettings::from_lookup(&lookup(&[("IDP_SYNC", "on")])).unwrap_err();
        assert_eq!(error.variable(), "IDP_SYNC");
        let error =
            IdpSettings::from_lookup(&lookup(&[("IDP_SYNC", "on"), ("AUTH_PROVIDER", "clerk")]))
                .unwrap_err();
        assert_eq!(error.variable(), "CLERK_SECRET_KEY");
        let clerk = IdpSettings::from_lookup(&lookup(&[
            ("IDP_SYNC", "on"),
            ("AUTH_PROVIDER", "clerk"),
            ("CLERK_SECRET_KEY", "sk_test_x"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(clerk.base_url, "https://api.clerk.com");
        let supabase = IdpSettings::from_lookup(&lookup(&[
            ("IDP_SYNC", "true"),
            ("AUTH_PROVIDER", "supabase"),
            ("SUPABASE_URL", "https://abc.supabase.co/"),
            ("SUPABASE_SERVICE_ROLE_KEY", "service"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(supabase.kind, IdpKind::Supabase);
        assert_eq!(supabase.base_url, "https://abc.supabase.co");
    }

    #[test]
    fn a_user_id_is_one_escaped_segment() {
        let url = user_url(
            "https://api.clerk.com",
            &["v1", "users"],
            "user/../x y",
            &["metadata"],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.clerk.com/v1/users/user%2F..%2Fx%20y/metadata"
        );
    }
}
