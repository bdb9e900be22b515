//! The immediate delivery attempt: when a request wrote an outbox event and
//! succeeded, one delivery run starts after the response
//! ([`Background`]: Vercel's `wait_until`, awaited on Lambda, a task
//! elsewhere), so receivers hear of a completion within a moment without
//! slowing its request; the scheduled run (`GET /api/cron/deliver`) catches
//! whatever this one could not deliver.

use axum::extract::Request;
use axum::response::Response;

use crate::http::background::Background;
use crate::http::middleware::{self, Next};
use crate::outbox;
use crate::state::AppState;

/// Serves the request with `next`, then starts [`outbox::deliver`] after a
/// successful response whose handler wrote an event, when any destination
/// is configured (run by [`crate::http::admit`], next to the handler).
pub async fn deliver_after_response(
    state: &AppState,
    request: Request,
    next: impl Next,
) -> Response {
    let background = request
        .extensions()
        .get::<Background>()
        .cloned()
        .unwrap_or_default();
    let (response, written) = outbox::noting_writes(middleware::run(next, request)).await;
    if written && response.status().is_success() && state.outbound().is_configured() {
        let state = state.clone();
        background.spawn(async move {
            match outbox::deliver(
                state.db(),
                state.outbound(),
                outbox::BATCH_SIZE,
                outbox::AFTER_RESPONSE_BUDGET,
            )
            .await
            {
                Ok(done) => tracing::debug!(?done, "outbox delivered after the response"),
                // The scheduled run delivers it later; the response has left.
                Err(error) => tracing::warn!(%error, "outbox delivery after the response failed"),
            }
        });
    }
    response
}
