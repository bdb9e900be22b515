//! One module per route; each owns its `router()`, which its `api/` file runs
//! alone and the dev server mounts alongside the others.

pub mod health;

use axum::Router;

use crate::state::AppState;

/// Every route, as the local dev server and the router tests mount them.
pub fn all() -> Router<AppState> {
    Router::new().merge(health::router())
}
