//! The shared state of a process: built once per cold start, cloned cheaply
//! into every request.

use std::sync::Arc;
use std::time::Duration;

use crate::ai::AiClient;
use crate::auth::Authenticator;
use crate::cache::{Cache, RateLimiter, Redis, Sessions};
use crate::config::Settings;
use crate::db::Database;
use crate::db::event_writer::EventWriter;
use crate::flags::EdgeConfigStore;
use crate::monitoring::otlp::Exporter;
use crate::outbound::Outbound;
use crate::wizard::flow::Flow;

/// Everything a route needs besides the request.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    db: Database,
    events: EventWriter,
    redis: Option<Redis>,
    http: reqwest::Client,
    authenticator: Authenticator,
    flags: EdgeConfigStore<Flow>,
    ai: Option<AiClient>,
    spans: Option<Exporter>,
    outbound: Outbound,
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
        let authenticator = Authenticator::new(settings.auth.clone(), http.clone());
        let flags =
            EdgeConfigStore::from_settings(&settings.edge_config, &settings.flags, http.clone());
        // Its own client: per-call AI timeouts are longer than the shared one's.
        let ai = settings.ai.clone().map(AiClient::new).transpose()?;
        let spans = settings
            .otlp
            .clone()
            .map(|otlp| Exporter::new(otlp, http.clone()));
        let events = EventWriter::new(db.clone());
        // Its own client: its timeout is OUTBOUND_TIMEOUT_MS.
        let outbound = Outbound::new(settings.outbound.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                db,
                events,
                redis,
                http,
                authenticator,
                flags,
                ai,
                spans,
                outbound,
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// The queue funnel events are stored through, after the response.
    pub fn events(&self) -> &EventWriter {
        &self.inner.events
    }

    pub fn redis(&self) -> Option<&Redis> {
        self.inner.redis.as_ref()
    }

    /// The `status`/`flow` answer cache (a no-op without Redis).
    pub fn cache(&self) -> Cache<'_> {
        Cache::new(self.redis(), self.settings().cache)
    }

    /// Anonymous sessions: PostgreSQL, cached in Redis.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions::new(self.db(), self.redis(), self.settings().sessions)
    }

    /// The rate limiter (fails open without Redis).
    pub fn rate_limiter(&self) -> RateLimiter<'_> {
        RateLimiter::new(self.redis(), &self.settings().rate_limits.prefix)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.authenticator
    }

    /// Flags and the wizard flow: `state.flags().snapshot().await`, once per request.
    pub fn flags(&self) -> &EdgeConfigStore<Flow> {
        &self.inner.flags
    }

    /// The AI client (one circuit breaker per process); `None` when AI is off.
    pub fn ai(&self) -> Option<&AiClient> {
        self.inner.ai.as_ref()
    }

    /// The OpenTelemetry span exporter; `None` unless an OTLP endpoint is set.
    pub fn spans(&self) -> Option<&Exporter> {
        self.inner.spans.as_ref()
    }

    /// The webhook and identity-provider client the outbox delivers through.
    pub fn outbound(&self) -> &Outbound {
        &self.inner.outbound
    }
}
