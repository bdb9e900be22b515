//! `GET /api/onboarding/status`: for the Next.js middleware, on every navigation.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::auth::Caller;
use crate::db::{RlsContext, progress};
use crate::error::ApiError;
use crate::flow::AnswerMap;
use crate::http::extract::CallerOf;
use crate::routes::support::flags_of;
use crate::state::AppState;
use crate::wizard::status::{self, Status};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/onboarding/status", get(status))
}

#[tracing::instrument(skip_all)]
async fn status(
    State(state): State<AppState>,
    CallerOf(caller): CallerOf,
) -> Result<Json<Status>, ApiError> {
    let config = state.wizard_config().await;
    let flow = config.flow();
    let flags = flags_of(&config);
    let authenticated = matches!(caller, Caller::User(_));
    let has_identity = authenticated || caller.session().is_some();
    // A visitor without a session has no row: no database round trip.
    let found = if has_identity {
        progress::fetch_own_with_answers_in_one_trip(
            state.db(),
            &RlsContext::for_caller(&caller),
            flow.id(),
        )
        .await?
    } else {
        None
    };
    let (record, answers) = match found {
        Some((record, answers)) => (Some(record), answers.into_iter().collect::<AnswerMap>()),
        None => (None, AnswerMap::new()),
    };
    Ok(Json(status::compute(
        flow,
        &flags,
        authenticated,
        record.as_ref(),
        &answers,
        &state.settings().http.redirect_paths,
    )))
}
