//! Redis (Upstash in production): one auto-reconnecting connection per
//! instance, every command bounded by a timeout so a slow or absent Redis
//! degrades the request instead of failing it.

use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::config::RedisSettings;

/// A lazily connected Redis client.
pub struct Redis {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    command_timeout: Duration,
}

/// Why a Redis command did not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis failed: {0}")]
    Failed(#[from] redis::RedisError),
}

impl Redis {
    pub fn new(settings: &RedisSettings) -> Result<Self, String> {
        let client = redis::Client::open(settings.url.expose())
            .map_err(|error| format!("REDIS_URL is not usable: {error}"))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            command_timeout: settings.command_timeout,
        })
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

    /// Runs one command within the command timeout.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut connection = self.connection().await?;
        tokio::time::timeout(self.command_timeout, command.query_async(&mut connection))
            .await
            .map_err(|_| RedisError::Timeout(self.command_timeout))?
            .map_err(RedisError::from)
    }

    /// `PING`, for health checks.
    pub async fn ping(&self) -> Result<Duration, RedisError> {
        let started = Instant::now();
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(started.elapsed())
    }
}
