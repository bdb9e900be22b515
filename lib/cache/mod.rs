//! Redis (Upstash in production): one auto-reconnecting connection per
//! instance, every command bounded by a timeout so a slow or absent Redis
//! degrades the request instead of failing it.
//!
//! On top of the client:
//! - [`keys`]: every key the backend writes, namespaced and versioned;
//! - [`status_cache`]: typed JSON cache entries per subject, with the
//!   invalidation rule and a generation guard against stale fills;
//! - [`sessions`]: anonymous wizard sessions, PostgreSQL-backed, Redis-cached;
//! - [`rate_limit`]: sliding-window limits compatible with `@upstash/ratelimit`
//!   (the counting; the middleware that applies them is `http::rate_limit`).
//!
//! A store: it knows neither HTTP nor the application state.
//!
//! # Degraded mode
//! Redis is never required to answer a request. A failed or slow command is an
//! error here, and each caller turns it into its degraded behaviour (cache
//! miss, session from PostgreSQL, rate limit allowed). After
//! `REDIS_CIRCUIT_FAILURES` consecutive failures the client stops trying for
//! `REDIS_CIRCUIT_COOLDOWN_MS` ([`crate::breaker`]), answering
//! [`RedisError::CircuitOpen`] at once, so a dead Redis does not add a timeout to every request; then a
//! single request probes it and closes the circuit when it answers.

pub mod keys;
pub mod rate_limit;
pub mod sessions;
pub mod status_cache;

use std::time::{Duration, Instant};

use crate::breaker::CircuitBreaker;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisResult};
use tokio::sync::OnceCell;

use crate::breaker::CircuitSettings;
use crate::settings::{
    self, ConfigError, ExposeSecret, Profile, SecretString, parse_millis, parse_number,
};

pub use keys::{KeySpace, Subject};
pub use rate_limit::{Decision, Policy, RateLimitSettings, RateLimiter};
pub use sessions::{SessionRecord, SessionSettings, SessionSource, Sessions};
pub use status_cache::{Cache, CacheEntry, CacheSettings, FillOutcome, FillTicket, Lookup};

/// The local Redis the dev server and tests use.
pub const LOCAL_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Redis connection settings.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: SecretString,
    pub command_timeout: Duration,
    /// Prefix of every cache and session key.
    pub key_prefix: String,
    pub circuit: CircuitSettings,
}

impl RedisSettings {
    /// Reads `REDIS_URL` (or `KV_URL`) and the client's timeout, key prefix and
    /// circuit; `None` when no Redis is configured (caches are then bypassed).
    pub fn from_lookup(
        lookup: &dyn settings::Lookup,
        profile: Profile,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(url) = lookup
            .get("REDIS_URL")
            .or_else(|| lookup.get("KV_URL"))
            .or_else(|| profile.local_default(LOCAL_REDIS_URL))
        else {
            return Ok(None);
        };
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(ConfigError::new(
                "REDIS_URL",
                "must start with redis:// or rediss://",
            ));
        }
        Ok(Some(RedisSettings {
            url: SecretString::from(url),
            command_timeout: parse_millis(lookup, "REDIS_TIMEOUT_MS", 250, 1..=30_000)?,
            key_prefix: lookup
                .get("REDIS_KEY_PREFIX")
                .unwrap_or_else(|| keys::DEFAULT_KEY_PREFIX.to_string()),
            circuit: CircuitSettings {
                failures: parse_number(lookup, "REDIS_CIRCUIT_FAILURES", 3, 1..=1000)?,
                cooldown: parse_millis(lookup, "REDIS_CIRCUIT_COOLDOWN_MS", 5000, 1..=600_000)?,
            },
        }))
    }
}

/// A lazily connected Redis client.
pub struct Redis {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    command_timeout: Duration,
    keys: KeySpace,
    circuit: CircuitBreaker,
}

/// Why a Redis command did not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis failed: {0}")]
    Failed(#[from] redis::RedisError),
    /// Recent commands failed; Redis is skipped until the cooldown ends.
    #[error("redis skipped: the circuit is open after repeated failures")]
    CircuitOpen,
}

impl RedisError {
    /// Whether the error says "Redis is not there" (and so counts towards
    /// opening the circuit), rather than "Redis answered with an error".
    fn is_unavailability(&self) -> bool {
        match self {
            RedisError::Timeout(_) | RedisError::CircuitOpen => true,
            // An error reply, or a reply of an unexpected shape, is an answer:
            // Redis is there, and skipping it would not help.
            RedisError::Failed(error) => !matches!(
                error.kind(),
                redis::ErrorKind::Server(_)
                    | redis::ErrorKind::UnexpectedReturnType
                    | redis::ErrorKind::Parse
            ),
        }
    }
}

impl Redis {
    pub fn new(settings: &RedisSettings) -> Result<Self, String> {
        let client = redis::Client::open(settings.url.expose_secret())
            .map_err(|error| format!("REDIS_URL is not usable: {error}"))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            command_timeout: settings.command_timeout,
            keys: KeySpace::new(&settings.key_prefix),
            circuit: CircuitBreaker::new(settings.circuit),
        })
    }

    /// The key space every key of this client lives in.
    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// The per-command timeout.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Whether the circuit is open now (Redis is being skipped).
    pub fn circuit_is_open(&self) -> bool {
        self.circuit.is_open()
    }

    /// The shared connection; it is opened on first use, so a cold start with
    /// Redis down is not delayed, and it reconnects by itself afterwards.
    async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let timeout = self.command_timeout;
        let manager = self
            .connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1);
                tokio::time::timeout(
                    timeout,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                .map_err(|_| RedisError::Timeout(timeout))?
                .map_err(RedisError::from)
            })
            .await?;
        Ok(manager.clone())
    }

    /// Runs `operation` on the shared connection within the command timeout,
    /// through the circuit.
    async fn guarded<T, F>(
        &self,
        operation: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<T, RedisError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let Some(permit) = self.circuit.try_acquire() else {
            return Err(RedisError::CircuitOpen);
        };
        let _timer = crate::monitoring::Timer::start(crate::monitoring::Dependency::Cache);
        let outcome = async {
            let connection = self.connection().await?;
            tokio::time::timeout(self.command_timeout, operation(connection))
                .await
                .map_err(|_| RedisError::Timeout(self.command_timeout))?
                .map_err(RedisError::from)
        }
        .await;
        match &outcome {
            Err(error) if error.is_unavailability() => {
                if permit.failure() {
                    tracing::warn!(error = %error, cooldown = ?self.circuit.cooldown(), "redis circuit opened");
                }
            }
            _ => permit.success(),
        }
        outcome
    }

    /// Runs a command, a pipeline or a script within the command timeout.
    pub async fn run<T: FromRedisValue>(&self, request: &impl Request) -> Result<T, RedisError> {
        self.guarded(|mut connection| async move { request.run_on(&mut connection).await })
            .await
    }

    /// `PING`, for health checks.
    pub async fn ping(&self) -> Result<Duration, RedisError> {
        let started = Instant::now();
        let _: String = self.run(&redis::cmd("PING")).await?;
        Ok(started.elapsed())
    }
}

/// What [`Redis::run`] sends: a command, a pipeline (`MULTI`/`EXEC` when it
/// is atomic) or a Lua script (`EVALSHA`, loading it on `NOSCRIPT`).
/// The future is not declared `Send`: whether it is depends on the reply
/// type (a script's holds its reply across the `NOSCRIPT` retry), and each
/// caller's concrete types are what prove it.
pub trait Request: Sync {
    fn run_on<T: FromRedisValue>(
        &self,
        con: &mut ConnectionManager,
    ) -> impl Future<Output = RedisResult<T>>;
}

impl Request for redis::Cmd {
    async fn run_on<T: FromRedisValue>(&self, con: &mut ConnectionManager) -> RedisResult<T> {
        self.query_async(con).await
    }
}

impl Request for redis::Pipeline {
    async fn run_on<T: FromRedisValue>(&self, con: &mut ConnectionManager) -> RedisResult<T> {
        self.query_async(con).await
    }
}

impl Request for redis::ScriptInvocation<'_> {
    async fn run_on<T: FromRedisValue>(&self, con: &mut ConnectionManager) -> RedisResult<T> {
        self.invoke_async(con).await
    }
}
