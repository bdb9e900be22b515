//! One module per route; each owns its `router()`, which its `api/` file runs
//! alone and the dev server mounts alongside the others. A handler parses the
//! request (extractors of [`crate::http`]), calls one operation of
//! [`crate::wizard`] or a store, and maps the result to a response; each path
//! string is written once, in the route's `PATH`.
//!
//! A handler's `#[utoipa::path]` opens with two lines: what the operation is
//! (method, path, operation id, tag), then what it takes (parameters, body,
//! security; long parameter lists on lines of their own) ending in
//! `responses(`; its answers follow one a line, the sets many routes share
//! named from [`problems`].

pub mod ai;
pub mod ai_policy;
pub mod analytics;
pub mod complete;
pub mod deliver;
pub mod events;
pub mod flow;
pub mod health;
pub mod me;
pub mod merge;
pub mod problems;
pub mod purge;
pub mod session;
pub mod status;
pub mod steps;
pub mod webhooks;

use axum::Router;

use crate::state::AppState;

/// Every route but the OpenAPI document's (`openapi::router`, a layer above), which
/// is collected from these.
pub fn all() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(status::router())
        .merge(flow::router())
        .merge(steps::router())
        .merge(complete::router())
        .merge(session::router())
        .merge(merge::router())
        .merge(events::router())
        .merge(analytics::router())
        .merge(ai::preferences_router())
        .merge(ai::suggest_router())
        .merge(ai::accept_router())
        .merge(ai::reject_router())
        .merge(ai_policy::router())
        .merge(purge::router())
        .merge(deliver::router())
        .merge(me::erase_router())
        .merge(me::export_router())
        .merge(webhooks::clerk_router())
}
