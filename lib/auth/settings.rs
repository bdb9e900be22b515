//! [`AuthSettings`]: provider presets and environment parsing.

use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};

use crate::auth::session::MIN_SECRET_BYTES;
use crate::settings::{ConfigError, Lookup, Profile, SecretString};

/// Every environment variable read by [`AuthSettings::from_lookup`] with its meaning.
///
/// The README's table is checked against this list, so keep both in sync.
pub fn env_var_docs() -> &'static [(&'static str, &'static str)] {
    &[
        (
            "AUTH_PROVIDER",
            "Auth provider preset: clerk | supabase | authjs | oidc | hs256 (default hs256, for local dev).",
        ),
        (
            "AUTH_JWT_SECRET",
            "Shared HMAC secret (raw UTF-8 bytes, at least 32) for HS256/HS384/HS512 tokens. Required for hs256 and authjs; optional for supabase (legacy JWT secret).",
        ),
        (
            "AUTH_JWKS_URL",
            "URL of the provider's JSON Web Key Set (https; http only for localhost). Required for oidc; for clerk derived from AUTH_ISSUER + /.well-known/jwks.json when unset; optional for supabase (asymmetric keys).",
        ),
        (
            "AUTH_ISSUER",
            "Expected `iss` claim, compared exactly. Required for clerk (Frontend API URL) and oidc; checked whenever set.",
        ),
        (
            "AUTH_AUDIENCE",
            "Comma-separated accepted `aud` values; the token must contain one. Required for oidc; supabase defaults to `authenticated`; otherwise unchecked when unset.",
        ),
        (
            "AUTH_ALGORITHMS",
            "Comma-separated allow-list of JWS algorithms (e.g. RS256,ES256). Default by preset: clerk RS256; supabase HS256 (with secret) and/or ES256,RS256 (with JWKS); authjs and hs256 HS256; oidc RS256,ES256. `none` is never accepted.",
        ),
        (
            "AUTH_CLOCK_SKEW_SECONDS",
            "Allowed clock skew for exp/nbf/iat, in seconds (default 30, max 300).",
        ),
        (
            "AUTH_USER_ID_CLAIM",
            "Claim holding the user id; dotted paths allowed (default `sub`).",
        ),
        (
            "AUTH_ORG_ID_CLAIM",
            "Claim holding the organization id; dotted paths allowed, e.g. app_metadata.org_id (default `org_id`; clerk also reads `o.id`).",
        ),
        (
            "AUTH_ORG_ROLE_CLAIM",
            "Claim holding the organization role; dotted paths allowed (default `org_role`; clerk also reads `o.rol`; supabase `role`).",
        ),
        (
            "AUTH_COOKIE_NAME",
            "Name of the provider cookie carrying the JWT when no Bearer header is sent (default: clerk `__session`; supabase any `sb-<ref>-auth-token`, chunks .0/.1 joined; none for the others).",
        ),
        (
            "SESSION_SECRET",
            "Secret (at least 32 bytes) for signing the anonymous `onboarding_session` cookie. Required.",
        ),
    ]
}

/// Which auth provider issues the JWTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Clerk session tokens (RS256 via JWKS, `__session` cookie).
    Clerk,
    /// Supabase Auth access tokens (HS256 legacy secret and/or JWKS).
    Supabase,
    /// Auth.js / NextAuth configured to sign a JWS with a shared secret (HS256).
    /// Its default JWE-encrypted session cookie is *not* supported.
    AuthJs,
    /// Any OpenID Connect provider (issuer, JWKS, audience, claim paths).
    Oidc,
    /// Plain HS256 with a shared secret; the local-development default.
    Hs256,
}

impl FromStr for Provider {
    type Err = ConfigError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.to_ascii_lowercase().as_str() {
            "clerk" => Ok(Provider::Clerk),
            "supabase" => Ok(Provider::Supabase),
            "authjs" | "nextauth" => Ok(Provider::AuthJs),
            "oidc" => Ok(Provider::Oidc),
            "hs256" => Ok(Provider::Hs256),
            _ => Err(ConfigError::new(
                "AUTH_PROVIDER",
                format!(
                    "unknown provider {raw:?}; expected clerk, supabase, authjs, oidc or hs256"
                ),
            )),
        }
    }
}

/// A dotted path into the JWT claims, e.g. `app_metadata.org_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClaimPath(Vec<String>);

impl ClaimPath {
    fn parse(variable: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let segments: Vec<String> = raw.split('.').map(str::to_owned).collect();
        if segments
            .iter()
            .any(|s| s.is_empty() || s.chars().any(char::is_whitespace))
        {
            return Err(ConfigError::new(
                variable,
                format!("{raw:?} is not a claim path (dot-separated names)"),
            ));
        }
        Ok(Self(segments))
    }

    fn fixed(path: &str) -> Self {
        Self(path.split('.').map(str::to_owned).collect())
    }

    /// The names from the top-level claim down; never empty.
    pub(crate) fn segments(&self) -> &[String] {
        &self.0
    }
}

/// How the provider cookie's value carries the JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieFormat {
    /// The cookie value is the JWT itself.
    Jwt,
    /// Supabase session: `base64-<json>`, JSON object or array holding
    /// `access_token`, possibly split over `.0`, `.1`, ... chunks.
    SupabaseSession,
}

/// Where to look for the provider's cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProviderCookie {
    /// Exact cookie name, or `None` for "any `sb-<ref>-auth-token`" (Supabase).
    pub(crate) name: Option<String>,
    pub(crate) format: CookieFormat,
}

/// The HS256 secret the local profile accepts tokens signed with (as in `.env.example`).
pub const LOCAL_AUTH_JWT_SECRET: &str = "dev-only-onboarding-jwt-secret-0123456789abcdef";
/// The local profile's anonymous-session cookie secret.
pub const LOCAL_SESSION_SECRET: &str = "dev-only-onboarding-session-secret-0123456789abcdef";

/// Validated authentication settings, built once per process.
///
/// Parse with [`AuthSettings::from_lookup`].
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub(crate) provider: Provider,
    pub(crate) hs_secret: Option<SecretString>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) clock_skew: Duration,
    pub(crate) user_id_claim: ClaimPath,
    pub(crate) org_id_claims: Vec<ClaimPath>,
    pub(crate) org_role_claims: Vec<ClaimPath>,
    pub(crate) cookie: Option<ProviderCookie>,
    pub(crate) session_secret: SecretString,
    pub(crate) jwks_timeout: Duration,
    pub(crate) jwks_cache_ttl: Duration,
    pub(crate) jwks_min_refresh_interval: Duration,
    pub(crate) claims_cache_ttl: Duration,
    pub(crate) claims_cache_capacity: usize,
}

const MAX_CLOCK_SKEW_SECONDS: u64 = 300;

impl AuthSettings {
    /// Parses settings through `lookup`, so tests never touch the process
    /// environment. Blank values count as unset; the local profile signs with
    /// the development secrets of `.env.example` when none is set.
    pub fn from_lookup(lookup: &dyn Lookup, profile: Profile) -> Result<AuthSettings, ConfigError> {
        // Secrets are used byte-for-byte; everything else is trimmed.
        let secret = |name: &str| {
            lookup.get(name).or_else(|| match name {
                "AUTH_JWT_SECRET" => profile.local_default(LOCAL_AUTH_JWT_SECRET),
                "SESSION_SECRET" => profile.local_default(LOCAL_SESSION_SECRET),
                _ => None,
            })
        };
        let text = |name: &str| {
            lookup
                .get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let provider = match text("AUTH_PROVIDER") {
            Some(raw) => raw.parse::<Provider>()?,
            None => Provider::Hs256,
        };

        let session_secret = secret("SESSION_SECRET")
            .ok_or_else(|| ConfigError::new("SESSION_SECRET", "is required"))?;
        if session_secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::new(
                "SESSION_SECRET",
                format!("must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }

        let hs_secret = secret("AUTH_JWT_SECRET");
        if let Some(s) = &hs_secret
            && s.len() < MIN_SECRET_BYTES
        {
            return Err(ConfigError::new(
                "AUTH_JWT_SECRET",
                format!("must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }

        let issuer = text("AUTH_ISSUER");
        let mut jwks_url = text("AUTH_JWKS_URL");

        match provider {
            Provider::Clerk => {
                let Some(iss) = &issuer else {
                    return Err(ConfigError::new(
                        "AUTH_ISSUER",
                        "is required for clerk (your Frontend API URL)",
                    ));
                };
                if jwks_url.is_none() {
                    jwks_url = Some(format!(
                        "{}/.well-known/jwks.json",
                        iss.trim_end_matches('/')
                    ));
                }
            }
            Provider::Supabase => {
                if hs_secret.is_none() && jwks_url.is_none() {
                    return Err(ConfigError::new(
                        "AUTH_JWT_SECRET",
                        "supabase needs AUTH_JWT_SECRET (legacy HS256 secret) or AUTH_JWKS_URL",
                    ));
                }
            }
            Provider::AuthJs | Provider::Hs256 => {
                if hs_secret.is_none() {
                    return Err(ConfigError::new(
                        "AUTH_JWT_SECRET",
                        "is required for hs256 and authjs",
                    ));
                }
            }
            Provider::Oidc => {
                if jwks_url.is_none() {
                    return Err(ConfigError::new("AUTH_JWKS_URL", "is required for oidc"));
                }
                if issuer.is_none() {
                    return Err(ConfigError::new("AUTH_ISSUER", "is required for oidc"));
                }
            }
        }
        if let Some(url) = &jwks_url {
            check_jwks_url(url)?;
        }

        let mut audiences: Vec<String> = text("AUTH_AUDIENCE")
            .map(|raw| {
                raw.split(',')
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if audiences.is_empty() {
            match provider {
                Provider::Supabase => audiences.push("authenticated".to_owned()),
                Provider::Oidc => {
                    return Err(ConfigError::new("AUTH_AUDIENCE", "is required for oidc"));
                }
                _ => {}
            }
        }

        let algorithms = match text("AUTH_ALGORITHMS") {
            Some(raw) => parse_algorithms(&raw)?,
            None => default_algorithms(provider, hs_secret.is_some(), jwks_url.is_some()),
        };
        for alg in &algorithms {
            let hmac = alg.family() == AlgorithmFamily::Hmac;
            if hmac && hs_secret.is_none() {
                return Err(ConfigError::new(
                    "AUTH_ALGORITHMS",
                    format!("{alg:?} needs AUTH_JWT_SECRET"),
                ));
            }
            if !hmac && jwks_url.is_none() {
                return Err(ConfigError::new(
                    "AUTH_ALGORITHMS",
                    format!("{alg:?} needs AUTH_JWKS_URL"),
                ));
            }
        }

        let clock_skew = match text("AUTH_CLOCK_SKEW_SECONDS") {
            None => Duration::from_secs(30),
            Some(raw) => match raw.parse::<u64>() {
                Ok(secs) if secs <= MAX_CLOCK_SKEW_SECONDS => Duration::from_secs(secs),
                _ => {
                    return Err(ConfigError::new(
                        "AUTH_CLOCK_SKEW_SECONDS",
                        format!(
                            "must be a whole number of seconds from 0 to {MAX_CLOCK_SKEW_SECONDS}"
                        ),
                    ));
                }
            },
        };

        let user_id_claim = match text("AUTH_USER_ID_CLAIM") {
            Some(raw) => ClaimPath::parse("AUTH_USER_ID_CLAIM", &raw)?,
            None => ClaimPath::fixed("sub"),
        };
        let org_id_claims = match text("AUTH_ORG_ID_CLAIM") {
            Some(raw) => vec![ClaimPath::parse("AUTH_ORG_ID_CLAIM", &raw)?],
            // Clerk v1 tokens carry `org_id`; v2 session tokens nest it as `o.id`.
            None if provider == Provider::Clerk => {
                vec![ClaimPath::fixed("org_id"), ClaimPath::fixed("o.id")]
            }
            None => vec![ClaimPath::fixed("org_id")],
        };
        let org_role_claims = match text("AUTH_ORG_ROLE_CLAIM") {
            Some(raw) => vec![ClaimPath::parse("AUTH_ORG_ROLE_CLAIM", &raw)?],
            None => match provider {
                Provider::Clerk => vec![ClaimPath::fixed("org_role"), ClaimPath::fixed("o.rol")],
                Provider::Supabase => vec![ClaimPath::fixed("role")],
                _ => vec![ClaimPath::fixed("org_role")],
            },
        };

        let cookie_name = match text("AUTH_COOKIE_NAME") {
            Some(name) => {
                if !is_cookie_name(&name) {
                    return Err(ConfigError::new(
                        "AUTH_COOKIE_NAME",
                        format!("{name:?} is not a valid cookie name"),
                    ));
                }
                Some(name)
            }
            None => None,
        };
        let cookie = match provider {
            Provider::Clerk => Some(ProviderCookie {
                name: Some(cookie_name.unwrap_or_else(|| "__session".to_owned())),
                format: CookieFormat::Jwt,
            }),
            Provider::Supabase => Some(ProviderCookie {
                name: cookie_name,
                format: CookieFormat::SupabaseSession,
            }),
            Provider::AuthJs | Provider::Oidc | Provider::Hs256 => {
                cookie_name.map(|name| ProviderCookie {
                    name: Some(name),
                    format: CookieFormat::Jwt,
                })
            }
        };

        Ok(AuthSettings {
            provider,
            hs_secret: hs_secret.map(SecretString::from),
            jwks_url,
            issuer,
            audiences,
            algorithms,
            clock_skew,
            user_id_claim,
            org_id_claims,
            org_role_claims,
            cookie,
            session_secret: SecretString::from(session_secret),
            jwks_timeout: Duration::from_secs(3),
            jwks_cache_ttl: Duration::from_secs(600),
            jwks_min_refresh_interval: Duration::from_secs(30),
            claims_cache_ttl: Duration::from_secs(30),
            claims_cache_capacity: 10_000,
        })
    }

    /// Overrides JWKS timing (defaults: 3 s request timeout, 10 min cache,
    /// at most one refresh per 30 s). Mostly for tests.
    pub fn with_jwks_timing(
        mut self,
        timeout: Duration,
        cache_ttl: Duration,
        min_refresh_interval: Duration,
    ) -> Self {
        self.jwks_timeout = timeout;
        self.jwks_cache_ttl = cache_ttl;
        self.jwks_min_refresh_interval = min_refresh_interval;
        self
    }

    /// The configured provider preset.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The JWKS URL in use (explicit or derived), if any.
    pub fn jwks_url(&self) -> Option<&str> {
        self.jwks_url.as_deref()
    }

    /// The expected issuer, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The accepted audiences (empty: `aud` is not checked).
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The algorithm allow-list.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The allowed clock skew.
    pub fn clock_skew(&self) -> Duration {
        self.clock_skew
    }
}

fn default_algorithms(provider: Provider, has_secret: bool, has_jwks: bool) -> Vec<Algorithm> {
    match provider {
        Provider::Clerk => vec![Algorithm::RS256],
        Provider::Supabase => {
            let mut algs = Vec::new();
            if has_secret {
                algs.push(Algorithm::HS256);
            }
            if has_jwks {
                algs.extend([Algorithm::ES256, Algorithm::RS256]);
            }
            algs
        }
        Provider::AuthJs | Provider::Hs256 => vec![Algorithm::HS256],
        Provider::Oidc => vec![Algorithm::RS256, Algorithm::ES256],
    }
}

fn parse_algorithms(raw: &str) -> Result<Vec<Algorithm>, ConfigError> {
    let mut algs = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name.eq_ignore_ascii_case("none") {
            return Err(ConfigError::new(
                "AUTH_ALGORITHMS",
                "`none` is never allowed",
            ));
        }
        let alg = Algorithm::from_str(name).map_err(|_| {
            ConfigError::new("AUTH_ALGORITHMS", format!("unknown algorithm {name:?}"))
        })?;
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    if algs.is_empty() {
        return Err(ConfigError::new("AUTH_ALGORITHMS", "lists no algorithm"));
    }
    Ok(algs)
}

fn check_jwks_url(raw: &str) -> Result<(), ConfigError> {
    let url = reqwest::Url::parse(raw)
        .map_err(|_| ConfigError::new("AUTH_JWKS_URL", "is not a valid URL"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(()),
        // Keys fetched over plain http could be swapped by anyone on the path.
        "http" if loopback => Ok(()),
        _ => Err(ConfigError::new(
            "AUTH_JWKS_URL",
            "must use https (http is allowed only for localhost)",
        )),
    }
}

fn is_cookie_name(name: &str) -> bool {
    // RFC 6265 cookie-name is an RFC 7230 token.
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
