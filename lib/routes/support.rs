//! Small helpers the onboarding routes share.

use axum::http::HeaderValue;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::flow::EdgeConfig;

/// The flags of a snapshot for one caller, as the flow's condition evaluator
/// takes them: percentage rollouts are decided by `rollout_subject`.
pub fn flags_of<'a>(
    config: &'a EdgeConfig,
    rollout_subject: &'a str,
) -> impl Fn(&str) -> bool + Sync + 'a {
    move |key: &str| config.is_enabled(key, rollout_subject)
}

/// Who a percentage rollout is decided for: the user, else the session
/// (its hash, never the id itself), else nobody in particular.
pub fn rollout_subject(caller: &Caller) -> String {
    match (caller.user(), caller.session()) {
        (Some(user), _) => user.user_id().as_str().to_string(),
        (None, Some(session)) => session.hash_hex(),
        (None, None) => String::new(),
    }
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
