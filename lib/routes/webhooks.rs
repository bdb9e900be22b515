//! `POST /api/webhooks/clerk`: the identity provider's events, verified as
//! Clerk (through Svix) signs them (`auth::verify_webhook`). `user.deleted`
//! erases that user's onboarding data, as `DELETE /api/onboarding/me` would;
//! every other event is acknowledged and ignored. A replayed delivery erases
//! nothing more.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{ClerkEvent, InvalidIdentifier, verify_webhook};
use crate::db::RlsContext;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{RawBody, parse_json};
use crate::routes::problems::WriteLimits;
use crate::state::AppState;
use crate::wizard::erasure::{Erasure, erase_user};
use crate::wizard::reads::forget_cached_user;
use crate::wizard::validation::{ErrorCode, FieldError};

const CLERK_PATH: &str = "/api/webhooks/clerk";

/// `POST /api/webhooks/clerk`, the route of `api/webhooks/clerk.rs`.
pub fn clerk_router() -> Router<AppState> {
    Router::new().route(CLERK_PATH, post(clerk))
}

/// What was done with a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceipt {
    /// The event's `type`, e.g. `user.deleted`.
    pub received: String,
    /// For `user.deleted`: what was erased (zeros when a replay finds
    /// nothing left). `null` for an event that is ignored.
    pub erased: Option<Erasure>,
}

/// Clerk's user events
///
/// Point a Clerk webhook endpoint at this path (subscribe to `user.deleted`)
/// and set its signing secret as `CLERK_WEBHOOK_SECRET`. Each delivery is
/// checked as Svix signs it: HMAC-SHA256 of `"{svix-id}.{svix-timestamp}.{body}"`
/// under the secret, any `v1` signature of `svix-signature` matching, the
/// timestamp within five minutes of now (the `webhook-` header names are
/// accepted too). `user.deleted` erases that user's onboarding data exactly
/// as `DELETE /api/onboarding/me` does; other events are acknowledged and
/// ignored. Deliveries may be repeated: a replay erases nothing more.
#[utoipa::path(post, path = CLERK_PATH, operation_id = "clerkWebhook", tag = "privacy",
    params(
        ("svix-id" = Option<String>, Header, description = "The message id (or `webhook-id`)"),
        ("svix-timestamp" = Option<String>, Header, description = "Seconds since the epoch (or `webhook-timestamp`)"),
        ("svix-signature" = Option<String>, Header, description = "Space-separated `v1,<base64>` signatures (or `webhook-signature`)"),
    ),
    request_body(content = Object, description = "The Clerk event: `{\"type\": \"user.deleted\", \"data\": {\"id\": \"user_…\"}, …}`", content_type = "application/json"),
    security(()),
    responses(
        (status = 200, description = "Received: the erasure a `user.deleted` made, or `erased: null` for an ignored event", body = WebhookReceipt),
        (status = 400, description = "A signed body that is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The signature, its headers or its timestamp (more than five minutes off) do not check out", body = Problem, content_type = "application/problem+json"),
        WriteLimits,
        (status = 422, description = "A signed body that is not a Clerk event, or a `user.deleted` without a usable `data.id`", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "An unexpected database error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The webhook is not configured (`CLERK_WEBHOOK_SECRET` unset), or the database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn clerk(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<WebhookReceipt>, ApiError> {
    let Some(settings) = &state.settings().clerk_webhook else {
        return Err(ApiError::ServiceUnavailable(
            "the Clerk webhook is not configured".into(),
        ));
    };
    let now = chrono::Utc::now().timestamp();
    verify_webhook(&headers, &body, &settings.secret, now).map_err(|refused| {
        ApiError::Unauthorized {
            detail: format!("the webhook delivery was refused: {refused}"),
            www_authenticate: HeaderValue::from_static("Svix realm=\"clerk-webhook\""),
        }
    })?;
    let event: ClerkEvent = parse_json(&body)?;
    let user = event.deleted_user().map_err(unnamed_user)?;
    let Some(user) = user else {
        tracing::info!(event = %event.kind, "webhook event ignored");
        return Ok(Json(WebhookReceipt {
            received: event.kind,
            erased: None,
        }));
    };
    let erased = state
        .db()
        .transaction(&RlsContext::login_role(), async |tx| {
            erase_user(tx, &user).await
        })
        .await?;
    tracing::info!(
        rows = erased.total_deleted(),
        "user erased on the identity provider's request"
    );
    forget_cached_user(&state.cache(), &user).await;
    Ok(Json(WebhookReceipt {
        received: event.kind,
        erased: Some(erased),
    }))
}

/// A `user.deleted` whose `data.id` is no user id: 422, pointing at it.
fn unnamed_user(invalid: InvalidIdentifier) -> ApiError {
    ApiError::UnprocessableEntity {
        detail: "a user.deleted event must name the user".into(),
        errors: vec![FieldError {
            pointer: "/data/id".into(),
            code: match invalid {
                InvalidIdentifier::Empty => ErrorCode::Required,
                InvalidIdentifier::TooLong => ErrorCode::TooLong,
                InvalidIdentifier::ControlCharacter => ErrorCode::ControlCharacter,
            },
            message: invalid.to_string(),
            limit: None,
            step: None,
        }],
    }
}
