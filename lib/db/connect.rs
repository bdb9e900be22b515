//! Connection settings and the pool.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::tls::{LibpqTls, RootSources, TlsParameters};
use url::Url;

use crate::settings::{
    ConfigError, ExposeSecret, Lookup, Profile, SecretString, parse_millis, parse_number,
};

/// How much longer the server lets a statement run than the client waits.
const STATEMENT_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

/// How statements reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementMode {
    /// Named prepared statements, cached per connection: the fastest on a
    /// direct connection.
    Prepared,
    /// Unnamed statements with explicit parameter types: no statement outlives
    /// its transaction, which transaction-mode poolers require.
    Unnamed,
}

impl StatementMode {
    /// Picks [`StatementMode::Unnamed`] for URLs that point at a transaction-mode pooler.
    pub fn detect(url: &str) -> Self {
        let Ok(parsed) = Url::parse(url) else {
            return StatementMode::Prepared;
        };
        let flagged = parsed
            .query_pairs()
            .any(|(key, value)| key == "pgbouncer" && value == "true");
        let pooler_host = parsed
            .host_str()
            .is_some_and(|host| host.contains("-pooler") || host.contains("pooler."));
        let supavisor_port = parsed.port() == Some(6543);
        if flagged || pooler_host || supavisor_port {
            StatementMode::Unnamed
        } else {
            StatementMode::Prepared
        }
    }
}

/// The local application database URL: the non-superuser login role.
pub const LOCAL_DATABASE_URL: &str =
    "postgres://onboarding_app@127.0.0.1:5432/onboarding?sslmode=disable";
/// The local migration URL: a superuser, because the first migration creates roles.
pub const LOCAL_MIGRATION_DATABASE_URL: &str =
    "postgres://postgres@127.0.0.1:5432/onboarding?sslmode=disable";

/// Database connection settings.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    url: SecretString,
    statement_mode: StatementMode,
    pool_max_size: usize,
    pool_timeout: Duration,
    connect_timeout: Duration,
    lifecycle: PoolLifecycle,
    query_timeout: Duration,
    roots: RootSources,
}

/// How long a pooled connection lives: serverless instances are many, and a
/// connection an idle instance keeps is one the database cannot give another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLifecycle {
    /// An idle connection is closed after this (`DATABASE_POOL_IDLE_TIMEOUT_MS`).
    pub idle_timeout: Duration,
    /// Any connection is closed once this old, at its next idle moment
    /// (`DATABASE_POOL_MAX_LIFETIME_MS`).
    pub max_lifetime: Duration,
}

impl Default for PoolLifecycle {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(30 * 60),
        }
    }
}

/// Below Vercel's 10 s `maxDuration` (vercel.json), with room to answer.
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Query parameters that ORMs and integrations add to URLs but libpq does not know.
const NON_LIBPQ_PARAMETERS: &[&str] = &["pgbouncer", "connection_limit", "pool_timeout", "schema"];

impl DatabaseSettings {
    pub fn new(
        url: SecretString,
        statement_mode: StatementMode,
        pool_max_size: usize,
        pool_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        Self {
            url,
            statement_mode,
            pool_max_size,
            pool_timeout,
            connect_timeout,
            lifecycle: PoolLifecycle::default(),
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            roots: RootSources::from_home(),
        }
        .checked()
    }

    /// The settings, once the URL parses and its TLS files are readable.
    fn checked(self) -> Result<Self, String> {
        self.target()?;
        Ok(self)
    }

    /// Reads `DATABASE_URL` (or `POSTGRES_URL`), `DATABASE_STATEMENT_MODE` and
    /// the pool's sizes and timeouts.
    pub fn from_lookup(lookup: &dyn Lookup, profile: Profile) -> Result<Self, ConfigError> {
        let url = lookup
            .get("DATABASE_URL")
            .or_else(|| lookup.get("POSTGRES_URL"))
            .or_else(|| profile.local_default(LOCAL_DATABASE_URL))
            .ok_or_else(|| ConfigError::new("DATABASE_URL", "is not set (nor POSTGRES_URL)"))?;
        let statement_mode = match lookup.get("DATABASE_STATEMENT_MODE").as_deref() {
            None | Some("auto") => StatementMode::detect(&url),
            Some("prepared") => StatementMode::Prepared,
            Some("unnamed") => StatementMode::Unnamed,
            Some(other) => {
                return Err(ConfigError::new(
                    "DATABASE_STATEMENT_MODE",
                    format!("`{other}` is not one of prepared, unnamed, auto"),
                ));
            }
        };
        let root_pem = lookup.get("DATABASE_SSL_ROOT_CERT_PEM");
        let query_timeout = parse_millis(lookup, "DATABASE_QUERY_TIMEOUT_MS", 5_000, 100..=60_000)?;
        let lifecycle = PoolLifecycle {
            idle_timeout: parse_millis(
                lookup,
                "DATABASE_POOL_IDLE_TIMEOUT_MS",
                30_000,
                100..=3_600_000,
            )?,
            max_lifetime: parse_millis(
                lookup,
                "DATABASE_POOL_MAX_LIFETIME_MS",
                1_800_000,
                1_000..=86_400_000,
            )?,
        };
        Self {
            url: SecretString::from(url),
            statement_mode,
            pool_max_size: parse_number(lookup, "DATABASE_POOL_MAX_SIZE", 4, 1..=64)?,
            pool_timeout: parse_millis(lookup, "DATABASE_POOL_TIMEOUT_MS", 2000, 1..=60_000)?,
            connect_timeout: parse_millis(lookup, "DATABASE_CONNECT_TIMEOUT_MS", 3000, 1..=60_000)?,
            lifecycle,
            query_timeout,
            roots: RootSources {
                pem: root_pem,
                ..RootSources::from_home()
            },
        }
        .checked()
        .map_err(|problem| ConfigError::new("DATABASE_URL", problem))
    }

    pub fn url(&self) -> &SecretString {
        &self.url
    }

    pub fn statement_mode(&self) -> StatementMode {
        self.statement_mode
    }

    /// The same settings pointed at another URL (another database, a proxy, a role).
    pub fn with_url(&self, url: SecretString) -> Result<Self, String> {
        Self {
            url,
            ..self.clone()
        }
        .checked()
    }

    /// The longest one transaction may take, pool checkout included.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// How long the server lets a statement run: half a second past the
    /// client's deadline, which normally ends the request first; this bound
    /// is for the statement whose function was stopped and can no longer
    /// cancel it.
    pub fn statement_timeout(&self) -> Duration {
        self.query_timeout + STATEMENT_TIMEOUT_MARGIN
    }

    pub fn with_lifecycle(mut self, lifecycle: PoolLifecycle) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    pub fn lifecycle(&self) -> PoolLifecycle {
        self.lifecycle
    }

    pub fn with_statement_mode(mut self, mode: StatementMode) -> Self {
        self.statement_mode = mode;
        self
    }

    /// Parses the URL into a driver configuration, dropping parameters libpq
    /// does not know (tokio-postgres would reject them).
    pub fn target(&self) -> Result<PgTarget, String> {
        parse_pg_url(self.url.expose_secret(), self.connect_timeout, &self.roots)
    }

    /// Builds the pool. No connection is opened until the first request needs one,
    /// so a cold start never waits on the database it may not use.
    pub fn pool(&self) -> Result<Pool, String> {
        let PgTarget { config, tls } = self.target()?;
        let manager = Manager::from_connect(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let mut builder = Pool::builder(manager);
        if self.statement_mode == StatementMode::Prepared {
            // The reads sent as one call (`Statement::each_in_one_call`) have no
            // transaction of ours to set `statement_timeout` in (it is armed
            // when a statement starts, so the call cannot set its own): the
            // connection carries it instead. Not behind an announced pooler,
            // where a session setting would stay on a server connection that
            // others are handed next.
            let set_timeout = format!(
                "set statement_timeout = {}",
                self.statement_timeout().as_millis()
            );
            builder = builder.post_create(Hook::async_fn(move |client, _| {
                let set_timeout = set_timeout.clone();
                Box::pin(async move {
                    client
                        .batch_execute(&set_timeout)
                        .await
                        .map_err(HookError::Backend)
                })
            }));
        }
        builder
            .max_size(self.pool_max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.pool_timeout))
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .build()
            .map_err(|error| format!("cannot build the connection pool: {error}"))
    }
}

/// A database to connect to: the driver's configuration, and TLS as the
/// URL's libpq parameters ask for it.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub tls: LibpqTls,
}

impl PgTarget {
    /// Opens one connection (for tools and migrations; requests use the pool).
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, _driver) = self.tls.connect(&self.config).await?;
        Ok(client)
    }
}

/// Parses a PostgreSQL URL: libpq's TLS parameters for [`LibpqTls`], every
/// other parameter for tokio-postgres.
pub fn parse_pg_url(
    url: &str,
    connect_timeout: Duration,
    roots: &RootSources,
) -> Result<PgTarget, String> {
    let parsed = Url::parse(url).map_err(|_| "is not a valid postgres:// URL".to_string())?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err("must start with postgres:// or postgresql://".into());
    }
    let mut tls_parameters = TlsParameters::default();
    for (name, value) in parsed.query_pairs() {
        tls_parameters.set(&name, value.into_owned());
    }
    let tls = LibpqTls::new(&tls_parameters, roots)?;
    let dropped: Vec<&str> = NON_LIBPQ_PARAMETERS
        .iter()
        .chain(&TlsParameters::NAMES)
        .copied()
        .collect();
    let driver_url = drop_parameters(url, &dropped);
    let mut config = tokio_postgres::Config::from_str(&driver_url)
        .map_err(|error| format!("is not a usable PostgreSQL URL: {error}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("onboarding");
    }
    // Disconnected clients leave no idle transaction behind for long.
    config.keepalives_idle(Duration::from_secs(30));
    Ok(PgTarget { config, tls })
}

/// `url` without the query parameters named in `dropped`, every other byte
/// as it was: re-encoding the query (as `url`'s serializer does) would turn
/// `options=-c%20statement_timeout%3D5000` into `+statement_timeout`, which
/// libpq and tokio-postgres read literally.
fn drop_parameters(url: &str, dropped: &[&str]) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(key, _)| key);
            let key: String = url::form_urlencoded::parse(key.as_bytes())
                .map(|(key, _)| key.into_owned())
                .next()
                .unwrap_or_default();
            !pair.is_empty() && !dropped.contains(&key.as_str())
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tls::SslMode;

    fn target(url: &str) -> PgTarget {
        parse_pg_url(url, Duration::from_secs(3), &RootSources::default()).unwrap()
    }

    #[test]
    fn pooler_urls_use_unnamed_statements() {
        for url in [
            "postgres://u:p@ep-cool-1-pooler.us-east-1.aws.neon.tech/db?sslmode=require",
            "postgres://u:p@aws-0-eu.pooler.supabase.com:6543/postgres",
            "postgres://u:p@db.example.com/db?pgbouncer=true",
        ] {
            assert_eq!(StatementMode::detect(url), StatementMode::Unnamed, "{url}");
        }
        assert_eq!(
            StatementMode::detect("postgres://u@127.0.0.1:5432/db"),
            StatementMode::Prepared
        );
    }

    #[test]
    fn orm_only_parameters_are_dropped_before_parsing() {
        let target = target(
            "postgres://u:p@db.example.com/app?pgbouncer=true&connection_limit=1&sslmode=require",
        );
        assert_eq!(target.config.get_dbname(), Some("app"));
        assert_eq!(target.tls.mode(), SslMode::Require);
    }

    #[test]
    fn every_other_parameter_reaches_the_driver_byte_for_byte() {
        let config = target(
            "postgres://u@db.example.com/app?pgbouncer=true&options=-c%20statement_timeout%3D5000&application_name=my%20app&connection_limit=1",
        ).config;
        assert_eq!(config.get_options(), Some("-c statement_timeout=5000"));
        assert_eq!(config.get_application_name(), Some("my app"));
        let config = target(
            "postgres://u@h1,h2/app?connect_timeout=7&target_session_attrs=read-write&channel_binding=require",
        ).config;
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(
            config.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert_eq!(
            config.get_channel_binding(),
            tokio_postgres::config::ChannelBinding::Require
        );
        assert_eq!(config.get_hosts().len(), 2);
        assert_eq!(
            drop_parameters("postgres://h/db?a=1&pgbouncer=true", &["pgbouncer"]),
            "postgres://h/db?a=1"
        );
        assert_eq!(
            drop_parameters("postgres://h/db?pgbouncer=true", &["pgbouncer"]),
            "postgres://h/db"
        );
    }

    #[test]
    fn a_url_of_another_scheme_is_rejected() {
        assert!(
            parse_pg_url(
                "mysql://u@h/db",
                Duration::from_secs(1),
                &RootSources::default()
            )
            .is_err()
        );
    }
}
