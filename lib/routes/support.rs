//! Small helpers the onboarding routes share.

use crate::auth::Caller;
use crate::http::error::ApiError;
use crate::wizard::flow::EdgeConfig;

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
        Caller::Anonymous(_) => Err(ApiError::sign_in_required(
            "start an anonymous session (POST /api/onboarding/session) or sign in first",
        )),
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

/// The caller's progress row and answers for a flow, in one round trip; no
/// database work at all for a visitor without a session (who has no row).
pub async fn own_progress(
    state: &crate::state::AppState,
    caller: &Caller,
    flow_id: &str,
) -> Result<
    Option<(
        crate::db::progress::ProgressRecord,
        crate::wizard::flow::AnswerMap,
    )>,
    ApiError,
> {
    if caller.user().is_none() && caller.session().is_none() {
        return Ok(None);
    }
    let found = crate::db::progress::fetch_own_with_answers_in_one_trip(
        state.db(),
        &crate::db::RlsContext::for_caller(caller),
        flow_id,
    )
    .await?;
    Ok(found.map(|(record, answers)| (record, answers.into_iter().collect())))
}
