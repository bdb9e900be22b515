//! The shared state of a process: built once per cold start, cloned cheaply
//! into every request.

use std::sync::Arc;
use std::time::Duration;

use crate::ai::AiClient;
use crate::cache::Redis;
use crate::config::Settings;
use crate::db::Database;

/// Everything a route needs besides the request.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    db: Database,
    redis: Option<Redis>,
    http: reqwest::Client,
    ai: Option<AiClient>,
}

impl AppState {
    /// Builds the pool and clients. Opens no connection: the first request
    /// that needs one does, so a cold start costs no network round trip.
    pub fn build(settings: Settings) -> Result<Self, anyhow::Error> {
        let db = Database::new(&settings.database).map_err(anyhow::Error::msg)?;
        let redis = settings
            .redis
            .as_ref()
            .map(Redis::new)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        // Its own client: per-call AI timeouts are longer than the shared one's.
        let ai = settings.ai.clone().map(AiClient::new).transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                db,
                redis,
                http,
                ai,
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    pub fn redis(&self) -> Option<&Redis> {
        self.inner.redis.as_ref()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The AI client (one circuit breaker per process); `None` when AI is off.
    pub fn ai(&self) -> Option<&AiClient> {
        self.inner.ai.as_ref()
    }
}
