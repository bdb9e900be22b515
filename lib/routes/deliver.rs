//! `GET /api/cron/deliver`: the scheduled outbox delivery (`crons` in
//! `vercel.json`), callable by hand with the cron secret. Delivers due
//! events for up to 8 seconds ([`crate::outbox::deliver`]) and answers how
//! many were delivered, retried or dead-lettered.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::http::cron::CronJob;
use crate::http::error::{ApiError, Problem};
use crate::outbox::{self, Delivered};
use crate::routes::problems::CronSecretRequired;
use crate::state::AppState;

const PATH: &str = "/api/cron/deliver";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(handle))
}

/// Deliver pending outbox events
///
/// Vercel calls it on the `crons` schedule with `Authorization: Bearer
/// <CRON_SECRET>`. It claims due events (the oldest pending one of each
/// user), sends them to the webhook receivers and, with `IDP_SYNC`, the
/// identity provider, and records each outcome; rounds start while 8 seconds
/// leave room for a whole attempt. Runs may overlap: each event is claimed
/// by one of them. Events are delivered at least once: a run stopped midway
/// leaves its events to the next run, which sends them with the same
/// `webhook-id`.
#[utoipa::path(get, path = PATH, operation_id = "deliverOutbox", tag = "ops",
    security(("cronSecret" = [])), responses(
        (status = 200, description = "What was delivered, retried and dead-lettered, and whether the run got to the end", body = Delivered),
        CronSecretRequired,
        (status = 500, description = "An unexpected database error; outcomes recorded before it stay recorded", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`CRON_SECRET` is unset (scheduled jobs are not configured and never run), or the database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
pub(crate) async fn handle(
    State(state): State<AppState>,
    _: CronJob,
) -> Result<Json<Delivered>, ApiError> {
    let done = outbox::deliver(
        state.db(),
        state.outbound(),
        outbox::BATCH_SIZE,
        outbox::TIME_BUDGET,
    )
    .await?;
    tracing::info!(
        delivered = done.delivered,
        retried = done.retried,
        dead = done.dead,
        complete = done.complete,
        "outbox delivered"
    );
    Ok(Json(done))
}
