//! `GET /api/cron/purge`: the retention run, scheduled nightly by Vercel
//! (`crons` in `vercel.json`) and callable by hand with the cron secret.
//!
//! Deletes, in batches, expired anonymous sessions and their drafts,
//! idempotency records past their replay window, and analytics events, AI
//! suggestions and settled outbox events past their retention
//! ([`crate::db::retention`]); answers
//! how many of each and whether it got to the end within its time.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::db::retention::{self, Purged};
use crate::http::cron::CronJob;
use crate::http::error::{ApiError, Problem};
use crate::routes::problems::CronSecretRequired;
use crate::state::AppState;

const PATH: &str = "/api/cron/purge";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, get(handle))
}

/// Delete what has outlived its retention
///
/// Vercel calls it every night at 03:00 UTC with `Authorization: Bearer
/// <CRON_SECRET>`. It deletes in batches of 1,000 rows, each its own
/// transaction, for up to 8 seconds; a run cut short answers
/// `complete: false` and the next one continues. Runs may overlap: each row
/// is deleted by one of them. Repeating it deletes nothing new.
#[utoipa::path(get, path = PATH, operation_id = "purgeExpiredData", tag = "ops",
    security(("cronSecret" = [])), responses(
        (status = 200, description = "What was deleted, per kind, and whether the run got to the end", body = Purged),
        CronSecretRequired,
        (status = 500, description = "An unexpected database error; batches deleted before it stay deleted", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`CRON_SECRET` is unset (the purge is not configured and never runs), or the database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn handle(State(state): State<AppState>, _: CronJob) -> Result<Json<Purged>, ApiError> {
    let purged = retention::purge(
        state.db(),
        &state.settings().retention,
        retention::BATCH_SIZE,
        retention::TIME_BUDGET,
    )
    .await?;
    tracing::info!(
        sessions = purged.sessions,
        idempotency_keys = purged.idempotency_keys,
        events = purged.events,
        suggestions = purged.suggestions,
        complete = purged.complete,
        "purged"
    );
    Ok(Json(purged))
}
