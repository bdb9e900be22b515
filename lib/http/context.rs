//! What every wizard route needs before it looks at its body: who is calling,
//! the flow and flags in force for them (one Edge Config snapshot per
//! request), the database context their queries run under, and where the
//! status points. One extractor, so no handler repeats the preamble; and
//! the way a wizard write runs (once per `Idempotency-Key`, then the caller's
//! cached reads dropped), so no handler repeats that either.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::auth::{Caller, UserCaller};
use crate::db::{RlsContext, Tx};
use crate::flags::Snapshot;
use crate::http::error::ApiError;
use crate::http::extract::CallerOf;
use crate::http::idempotency::{Reply, RequestFingerprint, run_once};
use crate::state::AppState;
use crate::wizard::flow::Flow;
use crate::wizard::reads::{Reader, forget_cached};
use crate::wizard::save::{ExpectedVersion, WriteContext};
use crate::wizard::status::RedirectPaths;

/// The caller and the wizard as it applies to them.
pub struct WizardRequest {
    pub state: AppState,
    pub caller: Caller,
    snapshot: Snapshot<Flow>,
    /// Who percentage rollouts are decided for: the user, else the session's
    /// hash, else nobody in particular.
    rollout_subject: String,
}

impl WizardRequest {
    pub fn flow(&self) -> &Flow {
        self.snapshot.flow()
    }

    pub fn snapshot(&self) -> &Snapshot<Flow> {
        &self.snapshot
    }

    /// The flags for this caller, as the flow's conditions and the validators take them.
    pub fn flags(&self) -> impl Fn(&str) -> bool + Sync + '_ {
        self.snapshot.flags_for(&self.rollout_subject)
    }

    /// The context the caller's queries run under (RLS reads it).
    pub fn rls(&self) -> RlsContext {
        RlsContext::for_caller(&self.caller)
    }

    pub fn paths(&self) -> &RedirectPaths {
        &self.state.settings().http.redirect_paths
    }

    /// The cached reads of this caller, with `flags` from [`WizardRequest::flags`].
    pub fn reader<'a>(&'a self, flags: &'a (dyn Fn(&str) -> bool + Sync)) -> Reader<'a> {
        Reader {
            db: self.state.db(),
            cache: self.state.cache(),
            caller: &self.caller,
            flow: self.flow(),
            flags,
        }
    }

    /// Drops the caller's cached reads once a write has committed.
    pub async fn forget_cached(&self) {
        forget_cached(&self.state.cache(), &self.caller).await;
    }

    /// What a write of answers needs besides the answers, for this caller,
    /// with `flags` from [`WizardRequest::flags`].
    pub fn write_context<'a>(
        &'a self,
        flags: &'a (dyn Fn(&str) -> bool + Sync),
        expected: ExpectedVersion,
    ) -> WriteContext<'a> {
        WriteContext {
            flow: self.flow(),
            flags,
            expected,
            authenticated: self.is_signed_in(),
            paths: self.paths(),
        }
    }

    /// Runs `write` in one transaction under the caller's context, at most
    /// once per `Idempotency-Key`, then drops the caller's cached reads: the
    /// cache never outlives the commit that made it stale.
    pub async fn write_once(
        &self,
        key: Option<&str>,
        fingerprint: &RequestFingerprint<'_>,
        write: impl AsyncFnOnce(&Tx<'_>) -> Result<Reply, ApiError> + Clone,
    ) -> Result<Response, ApiError> {
        let reply = run_once(self.state.db(), &self.rls(), key, fingerprint, write).await?;
        self.forget_cached().await;
        Ok(reply.into_response())
    }

    /// The signed-in user, or a 401 whose detail says why signing in is needed.
    pub fn require_user(&self, why: &str) -> Result<&UserCaller, ApiError> {
        self.caller
            .user()
            .ok_or_else(|| ApiError::sign_in_required(why))
    }

    pub fn is_signed_in(&self) -> bool {
        matches!(self.caller, Caller::User(_))
    }

    /// A signed-in user, or an anonymous visitor with a session: a caller
    /// who can own wizard data.
    pub fn require_owner(&self) -> Result<(), ApiError> {
        match &self.caller {
            Caller::User(_) => Ok(()),
            Caller::Anonymous(anonymous) if anonymous.session().is_some() => Ok(()),
            Caller::Anonymous(_) => Err(ApiError::sign_in_required(
                "start an anonymous session (POST /api/onboarding/session) or sign in first",
            )),
        }
    }
}

fn rollout_subject(caller: &Caller) -> String {
    match (caller.user(), caller.session()) {
        (Some(user), _) => user.user_id().as_str().to_string(),
        (None, Some(session)) => session.hash_hex(),
        (None, None) => String::new(),
    }
}

impl FromRequestParts<AppState> for WizardRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CallerOf(caller) = CallerOf::from_request_parts(parts, state).await?;
        let snapshot = state.flags().snapshot().await;
        Ok(Self {
            state: state.clone(),
            rollout_subject: rollout_subject(&caller),
            caller,
            snapshot,
        })
    }
}
