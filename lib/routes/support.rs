//! Small helpers the onboarding routes share.

use axum::http::HeaderValue;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::flow::EdgeConfig;

/// The flags of a snapshot as the flow's condition evaluator takes them.
pub fn flags_of(config: &EdgeConfig) -> impl Fn(&str) -> bool + Sync + '_ {
    move |key: &str| config.flag(key)
}

/// Whether the caller can own wizard data: a signed-in user, or an anonymous
/// visitor with a session.
pub fn require_owner(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::User(_) => Ok(()),
        Caller::Anonymous(anonymous) if anonymous.session().is_some() => Ok(()),
        Caller::Anonymous(_) => Err(ApiError::Unauthorized {
            detail: "start an anonymous session (POST /api/onboarding/session) or sign in first"
                .into(),
            www_authenticate: HeaderValue::from_static("Bearer realm=\"onboarding\""),
        }),
    }
}

/// Drops the caller's cached status and flow after a write committed (and,
/// for a user presenting a session, the session's too).
pub async fn invalidate_cached(state: &crate::state::AppState, caller: &Caller) {
    use crate::cache::keys::Subject;
    let cache = state.cache();
    if let Some(subject) = Subject::of(caller) {
        cache.invalidate(&subject).await;
    }
    if let (Caller::User(_), Some(session)) = (caller, caller.session()) {
        cache.invalidate(&Subject::session(session)).await;
    }
}
