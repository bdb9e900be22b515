//! `GET /api/health`: each dependency's state. 503 only when the database, which
//! the wizard cannot do without, is down; Redis and Edge Config failures leave
//! the wizard working in a degraded mode and answer 200 with `degraded`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{self, Database, Probe, StatementMode};
use crate::flags::Freshness;
use crate::http::error::RETRY_AFTER_SECONDS;
use crate::state::AppState;

const PATH: &str = "/api/health";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(health))
}

/// How long health waits for a dependency before reporting it down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// `ok`, `degraded` (an optional dependency is down) or `unavailable`.
    pub status: &'static str,
    pub version: &'static str,
    pub checks: Checks,
    /// Analytics events this instance acknowledged with `202` and could not
    /// store since it started (the database refused them, or stayed away past
    /// the writer's retry window); each loss is also logged with its count.
    pub events_lost: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    pub database: DatabaseCheck,
    pub redis: Check,
    pub edge_config: Check,
    /// `off` when no provider is configured, `circuit_open` while calls are
    /// paused after failures, else `configured`. Not probed: a health check
    /// must not spend money or send data to a provider.
    pub ai: Check,
}

/// The database, probed on the path every request takes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseCheck {
    #[serde(flatten)]
    pub check: Check,
    /// How statements are sent: `prepared` (named, cached per connection) or
    /// `unnamed` (what a transaction-mode pooler needs).
    #[schema(value_type = String, example = "prepared")]
    pub statement_mode: &'static str,
    /// Whether `unnamed` was chosen because the server's answers showed an
    /// unannounced transaction-mode pooler (see README: Poolers).
    pub pooler_detected: bool,
    /// `current`, `behind` (the database lacks migrations this binary
    /// expects: `503`), `ahead` (it has newer ones; served) or `unknown`
    /// (the database did not answer).
    #[schema(value_type = String, example = "current")]
    pub schema: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// `up`, `down` or `not_configured`; Edge Config may also be `degraded`
    /// (serving its last good config after a failed refresh).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    fn from_result<E: std::fmt::Display>(result: Result<Duration, E>) -> Self {
        match result {
            Ok(latency) => Check {
                status: "up",
                latency_ms: Some((latency.as_secs_f64() * 1000.0 * 100.0).round() / 100.0),
                error: None,
            },
            Err(error) => Check {
                status: "down",
                latency_ms: None,
                error: Some(error.to_string()),
            },
        }
    }

    /// Edge Config as the cache last saw it: `up`; `degraded` while the last
    /// good config is served after a failed refresh; `down` while the
    /// embedded default is served because the source never answered.
    fn from_freshness(freshness: &Freshness, latency: Duration) -> Self {
        match freshness {
            Freshness::Fresh => Check::from_result(Ok::<_, String>(latency)),
            Freshness::Stale { reason } => Check {
                status: "degraded",
                latency_ms: None,
                error: Some(format!("serving the last good config: {reason}")),
            },
            Freshness::Degraded { reason } => Check {
                status: "down",
                latency_ms: None,
                error: Some(format!("serving the embedded default config: {reason}")),
            },
        }
    }

    fn not_configured() -> Self {
        Check {
            status: "not_configured",
            latency_ms: None,
            error: None,
        }
    }

    fn is_down(&self) -> bool {
        self.status == "down"
    }

    fn is_degraded(&self) -> bool {
        self.status == "degraded"
    }
}

/// The newest migration compiled into this binary.
static EXPECTED_SCHEMA_VERSION: std::sync::LazyLock<Option<i64>> = std::sync::LazyLock::new(|| {
    db::migrate::embedded()
        .last()
        .map(|migration| migration.version())
});

fn database_check(db: &Database, probe: Result<Probe, String>) -> DatabaseCheck {
    let applied = probe.as_ref().ok().map(|probe| probe.schema_version);
    let schema = match applied {
        None => "unknown",
        Some(applied) => match applied.cmp(&EXPECTED_SCHEMA_VERSION) {
            std::cmp::Ordering::Less => "behind",
            std::cmp::Ordering::Equal => "current",
            std::cmp::Ordering::Greater => "ahead",
        },
    };
    let mut check = Check::from_result(probe.map(|probe| probe.latency));
    if schema == "behind" {
        check.error = Some(format!(
            "the database's newest migration is {}, this binary expects {}: run the migrations (README: Migrations)",
            applied
                .flatten()
                .map_or("none".into(), |version| version.to_string()),
            EXPECTED_SCHEMA_VERSION.map_or("none".into(), |version| version.to_string())
        ));
    }
    DatabaseCheck {
        check,
        statement_mode: match db.statement_mode() {
            StatementMode::Prepared => "prepared",
            StatementMode::Unnamed => "unnamed",
        },
        pooler_detected: db.pooler_detected(),
        schema,
    }
}

async fn within<T, E: std::fmt::Display>(
    check: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

/// Each dependency's state
///
/// 503 only when the database, which the wizard cannot do without, is down;
/// Redis or Edge Config trouble is `degraded` with 200.
#[utoipa::path(get, path = PATH, operation_id = "getHealth", tag = "health",
    responses(
        (status = 200, description = "The database is up (`ok`, or `degraded` while Redis or Edge Config is down)", body = HealthReport),
        (status = 503, description = "The database is down (`unavailable`)", body = HealthReport),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn health(State(state): State<AppState>) -> Response {
    let database = within(state.db().probe());
    let redis = async {
        match state.redis() {
            Some(redis) => Check::from_result(within(redis.ping()).await),
            None => Check::not_configured(),
        }
    };
    // Through the cache, so health costs Edge Config at most one request per
    // TTL and reports what the routes are actually serving.
    let edge_config = async {
        let started = tokio::time::Instant::now();
        let snapshot = state.flags().snapshot().await;
        Check::from_freshness(snapshot.freshness(), started.elapsed())
    };
    let (database, redis, edge_config) = tokio::join!(database, redis, edge_config);
    let ai = Check {
        status: match state.ai() {
            None => "off",
            Some(client) if client.circuit_open() => "circuit_open",
            Some(_) => "configured",
        },
        latency_ms: None,
        error: None,
    };
    let database = database_check(state.db(), database);
    let checks = Checks {
        database,
        redis,
        edge_config,
        ai,
    };
    let (status, label) = if checks.database.check.is_down() || checks.database.schema == "behind" {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else if checks.redis.is_down()
        || checks.edge_config.is_down()
        || checks.edge_config.is_degraded()
    {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    };
    let report = HealthReport {
        status: label,
        version: env!("CARGO_PKG_VERSION"),
        checks,
        events_lost: state.events().lost(),
    };
    let mut response = (status, Json(report)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}
