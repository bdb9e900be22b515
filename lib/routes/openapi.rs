//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every route
//! ([`crate::openapi`]).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    // On Vercel the function's own path is /api/openapi (its file name);
    // vercel.json rewrites /api/openapi.json to it, and the function may see
    // either path.
    Router::new()
        .route("/api/openapi.json", get(openapi_json))
        .route("/api/openapi", get(openapi_json))
}

/// This document
///
/// Generated from the code at build time, so it changes only with a deploy;
/// nothing in it is personal, so CDNs and browsers may keep it for a while.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "getOpenApiDocument",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
    )
)]
async fn openapi_json() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        crate::openapi::document_json(),
    )
}
