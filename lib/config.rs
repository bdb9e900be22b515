//! Typed configuration, read once from the environment: each part reads its
//! own variables (`DatabaseSettings::from_lookup`, `RedisSettings::from_lookup`,
//! …) from the primitives of [`crate::settings`]; this module composes them,
//! and owns only the HTTP settings that belong to no store.
//!
//! Every variable is listed in [`ENV_VARS`] (and in README.md, which a test
//! keeps in step). Deployed functions fail fast naming a missing variable; the
//! local dev server fills in defaults for the local PostgreSQL, Redis and Edge
//! Config file.

use crate::ai::AiSettings;
use crate::auth::{AuthSettings, ClerkWebhookSettings};
use crate::cache::{CacheSettings, RateLimitSettings, RedisSettings, SessionSettings};
use crate::db::DatabaseSettings;
use crate::db::retention::RetentionSettings;
use crate::flags::{EdgeConfigSource, FlagsSettings};
use crate::monitoring::otlp::OtlpSettings;
use crate::outbound::OutboundSettings;
use crate::settings::{
    ConfigError, Lookup, Profile, SecretString, header_secret, parse_number, process_env,
};
use crate::wizard::status::RedirectPaths;

/// The wizard origins a local server lets call it with credentials: the
/// Next.js dev server (3000) and this dev server (3001), under both names a
/// browser may use for them.
pub const LOCAL_ALLOWED_ORIGINS: &str =
    "http://127.0.0.1:3000,http://localhost:3000,http://127.0.0.1:3001,http://localhost:3001";

/// The local dev server's port when `PORT` is unset: 3001, so the Next.js dev
/// server keeps 3000.
pub const DEV_SERVER_PORT: u16 = 3001;

/// Every environment variable the backend reads, with its meaning.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "DATABASE_URL",
        "PostgreSQL URL the functions connect with (falls back to POSTGRES_URL). Must be the non-superuser, non-BYPASSRLS login role `onboarding_app`.",
    ),
    (
        "POSTGRES_URL",
        "Injected by Vercel's Postgres integrations; used when DATABASE_URL is unset.",
    ),
    (
        "POSTGRES_URL_NON_POOLING",
        "Direct (non-pooled) URL; the `migrate` binary uses it when MIGRATION_DATABASE_URL is unset.",
    ),
    (
        "MIGRATION_DATABASE_URL",
        "URL of a role allowed to create roles and schemas, for applying migrations.",
    ),
    (
        "DATABASE_SSL_ROOT_CERT_PEM",
        "PEM text of the CA certificate(s) that signed the database server's certificate (Amazon RDS's bundle, say), used when DATABASE_URL names no `sslrootcert`: a function ships no file of its own. Unset: `sslrootcert` or `~/.postgresql/root.crt`, as libpq.",
    ),
    (
        "DATABASE_STATEMENT_MODE",
        "`prepared`, `unnamed` or `auto` (default). `unnamed` sends no named prepared statements, as transaction-mode poolers (PgBouncer, Supavisor, Neon's pooler) need; `auto` picks it for URLs with `pgbouncer=true`, a `-pooler` host or port 6543, and switches to it when the server's answers show an unannounced pooler.",
    ),
    (
        "DATABASE_POOL_MAX_SIZE",
        "Connections per function instance (default 4; serverless instances are many and small).",
    ),
    (
        "DATABASE_POOL_TIMEOUT_MS",
        "How long a request waits for a pooled connection before answering 503 (default 2000).",
    ),
    (
        "DATABASE_QUERY_TIMEOUT_MS",
        "The longest one database transaction may take, pool checkout included (default 5000, below Vercel's 10 s maxDuration); past it the request answers 503 and the connection is discarded.",
    ),
    (
        "DATABASE_POOL_IDLE_TIMEOUT_MS",
        "A pooled connection idle this long is closed at the next request (default 30000): an instance at rest gives its connections back to the database.",
    ),
    (
        "DATABASE_POOL_MAX_LIFETIME_MS",
        "A pooled connection this old is closed at its next idle moment (default 1800000).",
    ),
    (
        "DATABASE_CONNECT_TIMEOUT_MS",
        "Timeout for opening a database connection (default 3000).",
    ),
    (
        "REDIS_URL",
        "Redis URL (`redis://` or `rediss://` for TLS, as Upstash requires); falls back to KV_URL. Unset: no Redis, caches bypassed.",
    ),
    (
        "KV_URL",
        "Injected by Vercel's Upstash integration; used when REDIS_URL is unset.",
    ),
    (
        "REDIS_TIMEOUT_MS",
        "Per-command Redis timeout (default 250); past it the request goes on without Redis.",
    ),
    (
        "REDIS_KEY_PREFIX",
        "Prefix of every cache and session key, `{prefix}:v1:{kind}:{subject}` (default `onb`), so deployments can share one Redis.",
    ),
    (
        "REDIS_CIRCUIT_FAILURES",
        "Consecutive Redis failures (timeouts, refused or dropped connections) after which Redis is skipped for REDIS_CIRCUIT_COOLDOWN_MS (default 3).",
    ),
    (
        "REDIS_CIRCUIT_COOLDOWN_MS",
        "How long Redis is skipped once the circuit opens, before one request probes it again (default 5000).",
    ),
    (
        "CACHE_TTL_SECONDS",
        "Lifetime of cached `status` and `flow` answers (default 60); the backstop when an invalidation could not reach Redis.",
    ),
    (
        "CLERK_WEBHOOK_SECRET",
        "Signing secret of the Clerk webhook endpoint (`whsec_…`, from the Clerk dashboard), for `POST /api/webhooks/clerk`. Unset: the webhook answers 503. Never logged.",
    ),
    (
        "SESSION_TTL_SECONDS",
        "Sliding lifetime of an anonymous wizard session, in Redis and PostgreSQL (default 2592000, 30 days).",
    ),
    (
        "SESSION_TOUCH_INTERVAL_SECONDS",
        "Least time between two `last_seen_at` writes of a session to PostgreSQL (default 600).",
    ),
    (
        "RATE_LIMIT_PREFIX",
        "Key prefix of the rate-limit counters (default `@upstash/ratelimit`, as `@upstash/ratelimit` uses).",
    ),
    (
        "RATE_LIMIT_WRITES_PER_MINUTE",
        "Writes allowed per user or anonymous session per sliding minute (default 60).",
    ),
    (
        "RATE_LIMIT_WRITES_PER_MINUTE_PER_IP",
        "Writes allowed per client IP (IPv6: per /64) per sliding minute (default 300).",
    ),
    (
        "RATE_LIMIT_AI_PER_MINUTE",
        "AI calls allowed per user or anonymous session per sliding minute (default 10).",
    ),
    (
        "RATE_LIMIT_AI_PER_MINUTE_PER_IP",
        "AI calls allowed per client IP (IPv6: per /64) per sliding minute (default 30).",
    ),
    (
        "RATE_LIMIT_SESSIONS_PER_MINUTE_PER_IP",
        "New anonymous sessions allowed per client IP (IPv6: per /64) per sliding minute (default 20).",
    ),
    (
        "RATE_LIMIT_EVENTS_PER_MINUTE",
        "Funnel events (each event, not each batch) allowed per user or anonymous session per sliding minute (default 120).",
    ),
    (
        "RATE_LIMIT_EVENTS_PER_MINUTE_PER_IP",
        "Funnel events allowed per client IP (IPv6: per /64) per sliding minute (default 600).",
    ),
    (
        "EDGE_CONFIG",
        "Vercel Edge Config connection string (also read as GLOBAL_CONFIG). Unset: the local file EDGE_CONFIG_FILE.",
    ),
    (
        "GLOBAL_CONFIG",
        "New name of EDGE_CONFIG; used when EDGE_CONFIG is unset.",
    ),
    (
        "EDGE_CONFIG_FILE",
        "Local Edge Config JSON file used when EDGE_CONFIG is unset (default config/edge-config.json).",
    ),
    (
        "EDGE_CONFIG_TTL_MS",
        "How long a fetched Edge Config is served before it is refreshed in the background (default 10000).",
    ),
    (
        "EDGE_CONFIG_TIMEOUT_MS",
        "Timeout of one request to Edge Config (default 2000); past it the last good config is served.",
    ),
    (
        "BODY_LIMIT_BYTES",
        "Largest request body accepted; larger bodies get 413 (default 65536).",
    ),
    (
        "CORS_ALLOWED_ORIGINS",
        "Comma-separated origins of the wizard allowed to call with credentials (local default: http://127.0.0.1:3000,http://localhost:3000,http://127.0.0.1:3001,http://localhost:3001, the Next.js dev server and this one under both names; deployed default: none, same origin only). A request without an `Origin` header (the Next.js server calling it) gets no `Access-Control-*` headers, only the `Vary` header every answer has.",
    ),
    (
        "ONBOARDING_WIZARD_PATH",
        "Base path of the wizard pages; status redirects to `{path}/{step}` (default /onboarding).",
    ),
    (
        "ONBOARDING_DONE_PATH",
        "Where status sends a user who has completed onboarding (default /).",
    ),
    (
        "CLIENT_IP_HEADER",
        "Header a proxy you trust overwrites with the client's address (e.g. `x-real-ip` behind nginx, `cf-connecting-ip` behind Cloudflare), for the per-IP limits. Unset: Vercel's `x-vercel-forwarded-for` on Vercel, the event's source IP on Lambda, else the TCP peer; a header the client sent itself is never trusted.",
    ),
    (
        "TRUSTED_PROXY_SECRET",
        "A random string (16+ characters) that the Next.js app's server-side proxy sends as `x-onboarding-proxy-secret`, with the visitor's address as `x-onboarding-client-ip`: the per-IP limits then count each visitor, not the proxy. Unset: those headers are ignored. Never sent to browsers.",
    ),
    (
        "CRON_SECRET",
        "Secret Vercel sends as `Authorization: Bearer <CRON_SECRET>` with every cron job; `GET /api/cron/purge` and `GET /api/cron/deliver` require it (unset: both answer 503 and never run). At least 16 characters. Never logged.",
    ),
    (
        "ANALYTICS_RETENTION_DAYS",
        "Days an analytics event is kept after it happened; the purge deletes older ones (default 400, 1..=3650).",
    ),
    (
        "AI_SUGGESTION_RETENTION_DAYS",
        "Days an AI suggestion is kept after it was made, whatever its status; the purge deletes older ones (default 90, 1..=3650).",
    ),
    (
        "OUTBOX_RETENTION_DAYS",
        "Days an outbox event is kept after it was delivered or dead-lettered; the purge deletes older ones, never a pending one (default 30, 1..=3650).",
    ),
    (
        "PORT",
        "Port of the local dev server (default 3001, so the Next.js dev server keeps 3000).",
    ),
    (
        "VERCEL_DEV_PORT",
        "Port a function binary listens on, set by Vercel (default 3000).",
    ),
    (
        "LOG_FORMAT",
        "`json` (default for functions, what Vercel log drains ingest) or `pretty`.",
    ),
    (
        "RUST_LOG",
        "Log filter, e.g. `info` or `onboarding=debug` (default `info`).",
    ),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "Base URL of an OpenTelemetry collector (OTLP/HTTP, JSON encoding); spans go to `{base}/v1/traces`. Unset: no export.",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "Full traces URL; takes precedence over OTEL_EXPORTER_OTLP_ENDPOINT.",
    ),
    (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "Headers sent with every export, `key=value,key2=value2` (values percent-encoded), e.g. an API key. Never logged.",
    ),
    (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "Only `http/json` is supported (the default); any other value is a configuration error.",
    ),
    (
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "Timeout of one export request in milliseconds (default 10000).",
    ),
    (
        "OTEL_SERVICE_NAME",
        "`service.name` of the exported spans (default `onboarding`).",
    ),
    (
        "AI_PROVIDER",
        "`openai` (Chat Completions wire format: OpenAI, Azure OpenAI, Groq, Together, Ollama, vLLM, LM Studio) or `anthropic` (Messages API). Unset: AI suggestions are off.",
    ),
    (
        "AI_BASE_URL",
        "Base URL of the provider (default https://api.openai.com/v1 or https://api.anthropic.com); requests go to `{base}/chat/completions` or `{base}/v1/messages`.",
    ),
    (
        "AI_API_KEY",
        "Secret API key (Bearer token for openai, also sent as `api-key` to Azure hosts; `x-api-key` for anthropic). Required for anthropic and for the default OpenAI URL. Never logged.",
    ),
    (
        "AI_MODEL",
        "Model name sent with every request, e.g. gpt-4o-mini or claude-haiku-4-5. Required when AI_PROVIDER is set.",
    ),
    (
        "AI_TIMEOUT_MS",
        "Timeout of one provider call (default 10000).",
    ),
    (
        "AI_DEADLINE_MS",
        "Overall limit of one suggestion call including retries and backoff (default 20000).",
    ),
    (
        "AI_MAX_RETRIES",
        "Retries after a 429, 5xx, Anthropic 529, timeout or network error, with jittered exponential backoff honouring Retry-After (default 2, max 10).",
    ),
    (
        "OUTBOUND_WEBHOOK_URLS",
        "Comma-separated URLs that receive every outbox event as a Standard Webhooks-signed POST (https; http only for localhost). Unset: no webhooks.",
    ),
    (
        "OUTBOUND_WEBHOOK_SECRET",
        "Standard Webhooks signing secret, `whsec_<base64 of 24-64 random bytes>`; required with OUTBOUND_WEBHOOK_URLS. Receivers verify with the same secret. Never logged.",
    ),
    (
        "OUTBOUND_TIMEOUT_MS",
        "Timeout of one webhook or identity-provider call (default 3000, 100..=4000, so a whole attempt fits in the 5 s after a response and the 8 s of a scheduled run); a slower receiver counts as failed and is retried.",
    ),
    (
        "OUTBOX_MAX_ATTEMPTS",
        "Attempts after which an outbox event is dead-lettered (state `dead`) and the user's next event proceeds (default 15, 1..=100).",
    ),
    (
        "OUTBOX_BACKOFF_BASE_MS",
        "Delay before an event's second attempt, doubled per attempt up to an hour, with jitter; a longer Retry-After wins (default 10000).",
    ),
    (
        "IDP_SYNC",
        "`on` writes completion into the identity provider's user metadata (AUTH_PROVIDER clerk: public_metadata.onboardingComplete; supabase: app_metadata.onboarding_complete), through the outbox. Default off.",
    ),
    (
        "CLERK_SECRET_KEY",
        "Clerk Backend API secret key (`sk_…`), for IDP_SYNC with the clerk preset. Never logged.",
    ),
    (
        "CLERK_API_URL",
        "Clerk Backend API base URL (default https://api.clerk.com).",
    ),
    (
        "SUPABASE_URL",
        "The Supabase project URL (`https://<ref>.supabase.co`), for IDP_SYNC with the supabase preset.",
    ),
    (
        "SUPABASE_SERVICE_ROLE_KEY",
        "Supabase service-role key, for the admin API (IDP_SYNC with the supabase preset). Never logged.",
    ),
];

/// HTTP behaviour shared by every route.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub body_limit_bytes: usize,
    /// Origins allowed by CORS, exactly as browsers send them.
    pub allowed_origins: Vec<String>,
    pub redirect_paths: RedirectPaths,
    /// The header a trusted proxy writes the client's address into; `None`:
    /// the adapter's (Vercel, Lambda) or the TCP peer's.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// What Vercel's cron jobs present as `Authorization: Bearer …`
    /// (`CRON_SECRET`); `None`: the cron routes answer 503 and never run.
    pub cron_secret: Option<SecretString>,
    /// What the app's own server-side proxy presents with the visitor's
    /// address (`TRUSTED_PROXY_SECRET`); `None`: no request may name one.
    pub proxy_secret: Option<SecretString>,
}

/// Everything the backend is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: Profile,
    pub database: DatabaseSettings,
    pub redis: Option<RedisSettings>,
    pub edge_config: EdgeConfigSource,
    pub flags: FlagsSettings,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub cache: CacheSettings,
    pub sessions: SessionSettings,
    pub rate_limits: RateLimitSettings,
    pub retention: RetentionSettings,
    /// `None` when `AI_PROVIDER` is unset: AI suggestions are off.
    pub ai: Option<AiSettings>,
    /// `None` when no OTLP endpoint is set: no spans are exported.
    pub otlp: Option<OtlpSettings>,
    /// `None` when `CLERK_WEBHOOK_SECRET` is unset: the webhook is not configured.
    pub clerk_webhook: Option<ClerkWebhookSettings>,
    /// Where outbox events go: webhooks and the identity provider.
    pub outbound: OutboundSettings,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env(profile: Profile) -> Result<Self, ConfigError> {
        Self::from_lookup(&process_env, profile)
    }

    /// Reads settings through `lookup`, so tests never touch the process
    /// environment. Each part reads its own variables.
    pub fn from_lookup(lookup: &dyn Lookup, profile: Profile) -> Result<Self, ConfigError> {
        Ok(Settings {
            profile,
            database: DatabaseSettings::from_lookup(lookup, profile)?,
            redis: RedisSettings::from_lookup(lookup, profile)?,
            edge_config: EdgeConfigSource::from_lookup(lookup, profile)?,
            flags: FlagsSettings::from_lookup(lookup)?,
            http: HttpSettings::from_lookup(lookup, profile)?,
            auth: AuthSettings::from_lookup(lookup, profile)?,
            cache: CacheSettings::from_lookup(lookup)?,
            sessions: SessionSettings::from_lookup(lookup)?,
            rate_limits: RateLimitSettings::from_lookup(lookup)?,
            retention: RetentionSettings::from_lookup(lookup)?,
            ai: AiSettings::from_lookup(lookup)?,
            otlp: OtlpSettings::from_lookup(lookup)?,
            clerk_webhook: ClerkWebhookSettings::from_lookup(lookup)?,
            outbound: OutboundSettings::from_lookup(lookup)?,
        })
    }
}

impl HttpSettings {
    pub fn from_lookup(lookup: &dyn Lookup, profile: Profile) -> Result<Self, ConfigError> {
        Ok(HttpSettings {
            body_limit_bytes: parse_number(
                lookup,
                "BODY_LIMIT_BYTES",
                64 * 1024,
                1024..=16 * 1024 * 1024,
            )?,
            allowed_origins: parse_origins(
                lookup
                    .get("CORS_ALLOWED_ORIGINS")
                    .or_else(|| profile.local_default(LOCAL_ALLOWED_ORIGINS)),
            )?,
            redirect_paths: RedirectPaths {
                wizard_base: parse_path(lookup, "ONBOARDING_WIZARD_PATH", "/onboarding")?,
                done: parse_path(lookup, "ONBOARDING_DONE_PATH", "/")?,
            },
            client_ip_header: lookup
                .get("CLIENT_IP_HEADER")
                .map(|name| {
                    axum::http::HeaderName::try_from(name.trim().to_ascii_lowercase()).map_err(
                        |_| {
                            ConfigError::new(
                                "CLIENT_IP_HEADER",
                                format!("`{name}` is not a header name"),
                            )
                        },
                    )
                })
                .transpose()?,
            cron_secret: header_secret(lookup, "CRON_SECRET")?,
            proxy_secret: header_secret(lookup, "TRUSTED_PROXY_SECRET")?,
        })
    }
}

fn parse_origins(raw: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let url = url::Url::parse(origin).map_err(|_| {
                ConfigError::new(
                    "CORS_ALLOWED_ORIGINS",
                    format!("`{origin}` is not an origin"),
                )
            })?;
            let canonical = url.origin().ascii_serialization();
            if canonical != origin.trim_end_matches('/') {
                return Err(ConfigError::new(
                    "CORS_ALLOWED_ORIGINS",
                    format!("`{origin}` must be a bare origin like {canonical}"),
                ));
            }
            Ok(canonical)
        })
        .collect()
}

fn parse_path(
    lookup: &dyn Lookup,
    variable: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let path = lookup.get(variable).unwrap_or_else(|| default.to_string());
    if !path.starts_with('/') || path.contains("//") || path.chars().any(char::is_control) {
        return Err(ConfigError::new(
            variable,
            "must be a path starting with a single /",
        ));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::LOCAL_REDIS_URL;
    use crate::db::{LOCAL_DATABASE_URL, StatementMode};
    use crate::flags::LOCAL_EDGE_CONFIG_FILE;
    use crate::settings::ExposeSecret;
    use crate::settings::lookup_of as lookup;
    use std::path::PathBuf;
    use std::time::Duration;

    const SECRET_32: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_deployed_function_without_a_session_secret_fails_naming_it() {
        let error = Settings::from_lookup(
            &lookup(&[
                ("DATABASE_URL", "postgres://app@db.example.com/app"),
                ("AUTH_JWT_SECRET", SECRET_32),
            ]),
            Profile::Deployed,
        )
        .unwrap_err();
        assert_eq!(error.variable, "SESSION_SECRET");
    }

    #[test]
    fn a_deployed_function_without_a_database_url_fails_naming_the_variable() {
        let error = Settings::from_lookup(&lookup(&[]), Profile::Deployed).unwrap_err();
        assert_eq!(error.variable, "DATABASE_URL");
    }

    #[test]
    fn the_local_profile_defaults_to_the_local_services() {
        let settings = Settings::from_lookup(&lookup(&[]), Profile::Local).unwrap();
        assert_eq!(settings.database.url().expose_secret(), LOCAL_DATABASE_URL);
        assert_eq!(settings.redis.unwrap().url.expose_secret(), LOCAL_REDIS_URL);
        assert!(matches!(
            settings.edge_config,
            EdgeConfigSource::LocalFile(ref path) if path == &PathBuf::from(LOCAL_EDGE_CONFIG_FILE)
        ));
    }

    #[test]
    fn vercel_postgres_and_upstash_names_are_read() {
        let settings = Settings::from_lookup(
            &lookup(&[
                (
                    "POSTGRES_URL",
                    "postgres://u:p@ep-1-pooler.example.com/db?sslmode=require",
                ),
                ("KV_URL", "rediss://default:t@example.upstash.io:6379"),
                ("AUTH_JWT_SECRET", SECRET_32),
                ("SESSION_SECRET", SECRET_32),
            ]),
            Profile::Deployed,
        )
        .unwrap();
        assert_eq!(settings.database.statement_mode(), StatementMode::Unnamed);
        assert!(
            settings
                .redis
                .unwrap()
                .url
                .expose_secret()
                .starts_with("rediss://")
        );
    }

    #[test]
    fn an_out_of_range_number_is_rejected_with_its_variable() {
        let error =
            Settings::from_lookup(&lookup(&[("DATABASE_POOL_MAX_SIZE", "0")]), Profile::Local)
                .unwrap_err();
        assert_eq!(error.variable, "DATABASE_POOL_MAX_SIZE");
    }

    #[test]
    fn the_edge_config_cache_defaults_to_a_ten_second_ttl_and_a_two_second_timeout() {
        let settings = Settings::from_lookup(&lookup(&[]), Profile::Local).unwrap();
        assert_eq!(settings.flags, FlagsSettings::default());
        assert_eq!(settings.flags.ttl, Duration::from_secs(10));
        assert_eq!(settings.flags.request_timeout, Duration::from_secs(2));
        let settings = Settings::from_lookup(
            &lookup(&[
                ("EDGE_CONFIG_TTL_MS", "250"),
                ("EDGE_CONFIG_TIMEOUT_MS", "500"),
            ]),
            Profile::Local,
        )
        .unwrap();
        assert_eq!(settings.flags.ttl, Duration::from_millis(250));
        assert_eq!(settings.flags.request_timeout, Duration::from_millis(500));
    }

    #[test]
    fn the_readme_documents_every_environment_variable() {
        let readme = include_str!("../README.md");
        for (name, meaning) in ENV_VARS.iter().chain(crate::auth::env_var_docs()) {
            assert!(!meaning.is_empty(), "{name} has no meaning");
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{name} missing from README's environment table"
            );
        }
    }

    /// `.env.example` lists every variable README's environment table (and
    /// [`ENV_VARS`]) documents, nothing else, and its values are the local
    /// defaults: a valid local configuration, on the dev server's port.
    #[test]
    fn the_env_example_lists_every_variable_and_agrees_with_the_local_defaults() {
        let example = include_str!("../.env.example");
        let is_name = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        };
        // name → the value when the line is not commented out
        let mut listed = std::collections::BTreeMap::new();
        for line in example.lines() {
            let line = line.trim();
            let (commented, rest) = match line.strip_prefix('#') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let Some((name, value)) = rest.split_once('=') else {
                continue;
            };
            if !is_name(name) {
                continue;
            }
            assert!(
                listed
                    .insert(name.to_string(), (!commented).then(|| value.to_string()))
                    .is_none(),
                "{name} is listed twice in .env.example"
            );
        }
        let readme = include_str!("../README.md");
        let documented: std::collections::BTreeSet<&str> = readme
            .lines()
            .filter_map(|line| line.strip_prefix("| `")?.split_once("` |"))
            .map(|(name, _)| name)
            .filter(|name| is_name(name))
            .chain(
                ENV_VARS
                    .iter()
                    .chain(crate::auth::env_var_docs())
                    .map(|(name, _)| *name),
            )
            .collect();
        for name in &documented {
            assert!(
                listed.contains_key(*name),
                "{name} missing from .env.example"
            );
        }
        for name in listed.keys() {
            assert!(
                documented.contains(name.as_str()),
                "{name} is in .env.example but not in README's environment table"
            );
        }
        let values: Vec<(&str, &str)> = listed
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.as_deref()?)))
            .collect();
        let from_example = Settings::from_lookup(&lookup(&values), Profile::Local).unwrap();
        let defaults = Settings::from_lookup(&lookup(&[]), Profile::Local).unwrap();
        assert_eq!(
            from_example.http.allowed_origins,
            defaults.http.allowed_origins
        );
        assert_eq!(
            listed["PORT"].as_deref(),
            Some(DEV_SERVER_PORT.to_string().as_str()),
            "PORT in .env.example is the dev server's default port"
        );
    }

    #[test]
    fn the_local_cors_default_allows_the_dev_origins_under_both_names() {
        let settings = Settings::from_lookup(&lookup(&[]), Profile::Local).unwrap();
        for origin in [
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "http://127.0.0.1:3001",
            "http://localhost:3001",
        ] {
            assert!(
                settings.http.allowed_origins.iter().any(|o| o == origin),
                "{origin}"
            );
        }
        let deployed = HttpSettings::from_lookup(&lookup(&[]), Profile::Deployed).unwrap();
        assert!(
            deployed.allowed_origins.is_empty(),
            "deployed: same origin only"
        );
    }

    #[test]
    fn redis_cache_session_and_rate_limit_settings_are_read() {
        let settings = Settings::from_lookup(
            &lookup(&[
                ("REDIS_KEY_PREFIX", "preview"),
                ("SESSION_TTL_SECONDS", "3600"),
                ("RATE_LIMIT_WRITES_PER_MINUTE", "7"),
                ("RATE_LIMIT_AI_PER_MINUTE_PER_IP", "3"),
            ]),
            Profile::Local,
        )
        .unwrap();
        assert_eq!(settings.redis.unwrap().key_prefix, "preview");
        assert_eq!(settings.sessions.ttl, Duration::from_secs(3600));
        assert_eq!(settings.rate_limits.prefix, "@upstash/ratelimit");
        assert_eq!(settings.rate_limits.writes_per_session.limit, 7);
        assert_eq!(settings.rate_limits.writes_per_user.limit, 7);
        assert_eq!(settings.rate_limits.ai_per_ip.limit, 3);
        assert_eq!(settings.cache.ttl, Duration::from_secs(60));
    }

    #[test]
    fn ai_is_off_unless_a_provider_is_configured() {
        let settings = Settings::from_lookup(&lookup(&[]), Profile::Local).unwrap();
        assert!(settings.ai.is_none());
        let settings = Settings::from_lookup(
            &lookup(&[
                ("AI_PROVIDER", "anthropic"),
                ("AI_API_KEY", "sk-ant-s3cr3t"),
                ("AI_MODEL", "claude-haiku-4-5"),
            ]),
            Profile::Local,
        )
        .unwrap();
        assert!(settings.ai.is_some());
        assert!(!format!("{settings:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_purge_is_off_without_a_cron_secret_and_refuses_a_short_one() {
        let settings = Settings::from_lookup(&lookup(&[]), Profile::Local).unwrap();
        assert!(settings.http.cron_secret.is_none());
        assert_eq!(settings.retention.analytics_event_days, 400);
        let error = Settings::from_lookup(&lookup(&[("CRON_SECRET", "short")]), Profile::Local)
            .unwrap_err();
        assert_eq!(error.variable, "CRON_SECRET");
        assert!(!error.problem.contains("short"));
        let settings = Settings::from_lookup(
            &lookup(&[("CRON_SECRET", "cron-s3cr3t-0123456789")]),
            Profile::Local,
        )
        .unwrap();
        assert_eq!(
            settings.http.cron_secret.unwrap().expose_secret(),
            "cron-s3cr3t-0123456789"
        );
    }

    #[test]
    fn the_clerk_webhook_is_off_unless_its_secret_is_set_and_well_formed() {
        let settings = Settings::from_lookup(&lookup(&[]), Profile::Local).unwrap();
        assert!(settings.clerk_webhook.is_none());
        let settings = Settings::from_lookup(
            &lookup(&[("CLERK_WEBHOOK_SECRET", "whsec_czNjcjN0LWtleS1ieXRlcw==")]),
            Profile::Local,
        )
        .unwrap();
        assert!(settings.clerk_webhook.is_some());
        assert!(!format!("{settings:?}").contains("czNjcjN0"));
        let error = Settings::from_lookup(
            &lookup(&[("CLERK_WEBHOOK_SECRET", "whsec_???")]),
            Profile::Local,
        )
        .unwrap_err();
        assert_eq!(error.variable, "CLERK_WEBHOOK_SECRET");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let settings = Settings::from_lookup(
            &lookup(&[
                ("DATABASE_URL", "postgres://app:s3cr3t@db.example.com/app"),
                ("AUTH_JWT_SECRET", SECRET_32),
                ("SESSION_SECRET", SECRET_32),
                ("CRON_SECRET", "cron-s3cr3t-0123456789"),
            ]),
            Profile::Deployed,
        )
        .unwrap();
        assert!(settings.http.cron_secret.is_some());
        assert!(!format!("{settings:?}").contains("s3cr3t"));
    }
}
