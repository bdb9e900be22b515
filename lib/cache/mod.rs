//! Redis (Upstash in production): one auto-reconnecting connection per
//! instance, every command bounded by a timeout so a slow or absent Redis
//! degrades the request instead of failing it.
//!
//! On top of the client:
//! - [`keys`]: every key the backend writes, namespaced and versioned;
//! - [`status_cache`]: typed JSON cache entries per subject, with the
//!   invalidation rule and a generation guard against stale fills;
//! - [`sessions`]: anonymous wizard sessions, PostgreSQL-backed, Redis-cached;
//! - [`rate_limit`]: sliding-window limits compatible with `@upstash/ratelimit`.
//!
//! # Degraded mode
//! Redis is never required to answer a request. A failed or slow command is an
//! error here, and each caller turns it into its degraded behaviour (cache
//! miss, session from PostgreSQL, rate limit allowed). After
//! [`CircuitSettings::failures`] consecutive failures the client stops trying
//! for [`CircuitSettings::cooldown`], answering [`RedisError::CircuitOpen`] at
//! once, so a dead Redis does not add a timeout to every request; then a
//! single request probes it and closes the circuit when it answers.

pub mod keys;
pub mod rate_limit;
pub mod sessions;
pub mod status_cache;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::config::RedisSettings;

pub use keys::{KeySpace, Subject};
pub use rate_limit::{Decision, Policy, RateLimitSettings, RateLimiter};
pub use sessions::{SessionRecord, SessionSettings, SessionSource, Sessions};
pub use status_cache::{Cache, CacheEntry, CacheSettings, FillOutcome, FillTicket, Lookup};

/// When the client stops calling a failing Redis, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSettings {
    /// Consecutive failures (timeouts, refused or dropped connections) that open the circuit.
    pub failures: u32,
    /// How long an open circuit skips Redis before one request probes it again.
    pub cooldown: Duration,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        Self {
            failures: 3,
            cooldown: Duration::from_secs(5),
        }
    }
}

/// A lazily connected Redis client.
pub struct Redis {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    command_timeout: Duration,
    keys: KeySpace,
    circuit: Circuit,
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
        let client = redis::Client::open(settings.url.expose())
            .map_err(|error| format!("REDIS_URL is not usable: {error}"))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            command_timeout: settings.command_timeout,
            keys: KeySpace::new(&settings.key_prefix),
            circuit: Circuit::new(settings.circuit),
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
        self.circuit.is_open(Instant::now())
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
        if !self.circuit.allow(Instant::now()) {
            return Err(RedisError::CircuitOpen);
        }
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
                if self.circuit.record_failure(Instant::now()) {
                    tracing::warn!(error = %error, cooldown = ?self.circuit.settings.cooldown, "redis circuit opened");
                }
            }
            _ => self.circuit.record_success(),
        }
        outcome
    }

    /// Runs one command within the command timeout.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, RedisError> {
        self.guarded(|mut connection| async move { command.query_async(&mut connection).await })
            .await
    }

    /// Runs a pipeline (`MULTI`/`EXEC` when it is atomic) within the command timeout.
    pub async fn pipeline<T: redis::FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        self.guarded(|mut connection| async move { pipeline.query_async(&mut connection).await })
            .await
    }

    /// Runs a Lua script (`EVALSHA`, loading it on `NOSCRIPT`) within the
    /// command timeout.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        self.guarded(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
    }

    /// `PING`, for health checks.
    pub async fn ping(&self) -> Result<Duration, RedisError> {
        let started = Instant::now();
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(started.elapsed())
    }
}

/// Consecutive-failure circuit breaker, in-process.
struct Circuit {
    settings: CircuitSettings,
    state: Mutex<CircuitState>,
}

#[derive(Default)]
struct CircuitState {
    consecutive_failures: u32,
    /// While set and in the future, calls are skipped.
    open_until: Option<Instant>,
}

impl Circuit {
    fn new(settings: CircuitSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(CircuitState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CircuitState> {
        // The state is two numbers; a panic elsewhere cannot leave it inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_open(&self, now: Instant) -> bool {
        self.lock().open_until.is_some_and(|until| now < until)
    }

    /// Whether a call may go to Redis. Once the cooldown is over, the first
    /// caller probes and the others keep skipping until it reports back.
    fn allow(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match state.open_until {
            Some(until) if now < until => false,
            Some(_) => {
                state.open_until = Some(now + self.settings.cooldown);
                true
            }
            None => true,
        }
    }

    fn record_success(&self) {
        let mut state = self.lock();
        state.consecutive_failures = 0;
        state.open_until = None;
    }

    /// Counts a failure; returns whether this one opened the circuit.
    fn record_failure(&self, now: Instant) -> bool {
        let mut state = self.lock();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        if state.consecutive_failures >= self.settings.failures {
            let was_open = state.open_until.is_some();
            state.open_until = Some(now + self.settings.cooldown);
            return !was_open;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circuit() -> Circuit {
        Circuit::new(CircuitSettings {
            failures: 3,
            cooldown: Duration::from_secs(5),
        })
    }

    #[test]
    fn the_circuit_opens_after_the_configured_consecutive_failures() {
        let circuit = circuit();
        let now = Instant::now();
        assert!(!circuit.record_failure(now));
        assert!(!circuit.record_failure(now));
        assert!(circuit.allow(now));
        assert!(circuit.record_failure(now));
        assert!(!circuit.allow(now));
        assert!(!circuit.allow(now + Duration::from_millis(4_999)));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let circuit = circuit();
        let now = Instant::now();
        circuit.record_failure(now);
        circuit.record_failure(now);
        circuit.record_success();
        assert!(!circuit.record_failure(now));
        assert!(circuit.allow(now));
    }

    #[test]
    fn after_the_cooldown_one_caller_probes_and_the_others_keep_skipping() {
        let circuit = circuit();
        let now = Instant::now();
        for _ in 0..3 {
            circuit.record_failure(now);
        }
        let later = now + Duration::from_secs(5);
        assert!(circuit.allow(later), "the first caller probes");
        assert!(!circuit.allow(later), "the others skip while it probes");
        // The probe fails: the circuit stays open for another cooldown.
        assert!(!circuit.record_failure(later));
        assert!(!circuit.allow(later + Duration::from_secs(4)));
        // The next probe succeeds: closed.
        assert!(circuit.allow(later + Duration::from_secs(5)));
        circuit.record_success();
        assert!(circuit.allow(later + Duration::from_secs(5)));
        assert!(!circuit.is_open(later + Duration::from_secs(5)));
    }
}
