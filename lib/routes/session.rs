//! `POST /api/onboarding/session`: starts an anonymous wizard session, or
//! returns the one the visitor already presents (so retrying is harmless).
//!
//! The session id is 128 random bits; the cookie carries it signed (HMAC),
//! the database and Redis only its SHA-256. Non-browser clients send the
//! returned `session` value back in `X-Onboarding-Session`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, SessionId, cookie_is_secure};
use crate::cache::rate_limit::ip_identifier;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::CallerForNewSession;
use crate::http::rate_limit::ClientIp;
use crate::routes::problems::{CredentialRejected, DatabaseProblems};
use crate::state::AppState;

const PATH: &str = "/api/onboarding/session";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(handle))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStarted {
    /// The signed session value, for `X-Onboarding-Session`.
    pub session: String,
    pub expires_at: DateTime<Utc>,
}

/// Start an anonymous wizard session
///
/// Sets the signed `onboarding_session` cookie (`HttpOnly`, `SameSite=Lax`,
/// `Secure` except on localhost); clients without cookies send `session`
/// back in `X-Onboarding-Session`. A visitor who presents a live session
/// gets it back, so retrying is harmless.
#[utoipa::path(post, path = PATH, operation_id = "startSession", tag = "session",
    security((), ("sessionCookie" = []), ("sessionHeader" = [])), responses(
        (status = 200, description = "The session presented is live and is returned", body = SessionStarted,
            headers(("Set-Cookie" = String, description = "`onboarding_session=…`"))),
        (status = 201, description = "A new session (also in place of one that expired or does not verify)", body = SessionStarted,
            headers(("Set-Cookie" = String, description = "`onboarding_session=…`"))),
        CredentialRejected,
        (status = 409, description = "The caller is signed in and needs no anonymous session", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many writes, or too many new sessions from this address (`RATE_LIMIT_SESSIONS_PER_MINUTE_PER_IP`); retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
        DatabaseProblems,
    )
)]
#[tracing::instrument(level = "debug", skip_all)]
async fn handle(
    State(state): State<AppState>,
    CallerForNewSession(caller): CallerForNewSession,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let anonymous = match &caller {
        Caller::User(_) => {
            return Err(ApiError::Conflict(
                "signed-in users need no anonymous session".into(),
            ));
        }
        Caller::Anonymous(anonymous) => anonymous,
    };
    let sessions = state.sessions();
    let (session, status) = match anonymous.session() {
        Some(existing) if sessions.touch(existing).await?.is_some() => (*existing, StatusCode::OK),
        // A session that expired or never existed here: start afresh, within
        // the address's budget of new sessions (every one is a row).
        _ => {
            if let Some(ip) = client {
                let policy = &state.settings().rate_limits.sessions_per_ip;
                state
                    .rate_limiter()
                    .enforce(&[(policy, ip_identifier(ip))])
                    .await
                    .map_err(ApiError::RateLimited)?;
            }
            let session = SessionId::generate();
            sessions.create(&session).await?;
            (session, StatusCode::CREATED)
        }
    };
    let ttl = state.settings().sessions.ttl;
    let cookies = state.authenticator().session_cookies();
    let body = SessionStarted {
        session: cookies.issue(&session),
        expires_at: Utc::now()
            + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30)),
    };
    let cookie = cookies.set_cookie_header(&session, cookie_is_secure(&headers), ttl);
    Ok((status, [(header::SET_COOKIE, cookie)], Json(body)).into_response())
}
