//! The reads of the wizard, each cached per caller in Redis: where the caller
//! stands (`status`) and the flow as it applies to them (`flow`). A hit costs
//! no database round trip; writes drop the caller's entries once they commit
//! ([`forget_cached`]), and the TTL is the backstop. The caller's own answers
//! (`Reader::own_answers`, for an AI suggestion's prompt) are read uncached.

use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::auth::{Caller, UserId};
use crate::cache::keys::Subject;
use crate::cache::status_cache::{Cache, CacheEntry, Lookup};
use crate::db::progress::{self, ProgressRecord};
use crate::db::{Database, RlsContext};
use crate::wizard::WizardError;
use crate::wizard::flow::{AnswerMap, FieldDefinition, Flow};
use crate::wizard::status::{self, RedirectPaths, Status};

// The flow as it applies to one caller (`GET /api/onboarding/flow`); no doc
// comment, which would become a description in the OpenAPI document.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowView {
    pub flow_id: String,
    pub version: u32,
    pub steps: Vec<FlowStep>,
}

/// A step as it applies to the caller.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowStep {
    pub id: String,
    pub title: String,
    pub optional: bool,
    pub fields: Vec<FieldDefinition>,
    /// JSON Schema (2020-12) of a completed answer.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// JSON Schema of a draft (required fields may be missing).
    #[schema(value_type = Object)]
    pub draft_schema: serde_json::Value,
}

/// What a read needs to know of the caller and the flow in force for them.
pub struct Reader<'a> {
    pub db: &'a Database,
    pub cache: Cache<'a>,
    pub caller: &'a Caller,
    pub flow: &'a Flow,
    pub flags: &'a (dyn Fn(&str) -> bool + Sync),
}

impl Reader<'_> {
    /// Where the caller's onboarding stands. Anonymous callers without a
    /// session have not started.
    pub async fn status(&self, paths: &RedirectPaths) -> Result<Status, WizardError> {
        self.cached(CacheEntry::Status, async || {
            let (record, answers) = match self.own_progress_for_visibility().await? {
                Some((record, answers)) => (Some(record), answers),
                None => (None, AnswerMap::new()),
            };
            Ok(status::compute(
                self.flow,
                self.flags,
                matches!(self.caller, Caller::User(_)),
                record,
                &answers,
                paths,
            ))
        })
        .await
    }

    /// The steps that apply to the caller, after flags and conditions, each
    /// with the JSON Schema of a completed answer and of a draft.
    pub async fn flow(&self) -> Result<FlowView, WizardError> {
        self.cached(CacheEntry::Flow, async || {
            // Conditions depend on earlier answers (a one-person organization has no team step).
            let answers = self
                .own_progress_for_visibility()
                .await?
                .map(|(_, answers)| answers)
                .unwrap_or_default();
            let flow = self.flow;
            let steps = flow
                .visible_steps(&answers, self.flags)
                .into_iter()
                .map(|step| FlowStep {
                    id: step.id.clone(),
                    title: step.title.clone(),
                    optional: step.optional,
                    fields: step.fields.clone(),
                    schema: flow.step_json_schema(&step.id).unwrap_or_default(),
                    draft_schema: flow.step_draft_json_schema(&step.id).unwrap_or_default(),
                })
                .collect();
            Ok(FlowView {
                flow_id: flow.id().to_string(),
                version: flow.version(),
                steps,
            })
        })
        .await
    }

    /// The caller's progress with the answers of the steps that decide
    /// visibility, the only ones status and flow read.
    async fn own_progress_for_visibility(
        &self,
    ) -> Result<Option<(ProgressRecord, AnswerMap)>, WizardError> {
        let read = self.flow.steps_read_by_visibility();
        self.own_progress(&|step| read.iter().any(|wanted| wanted == step))
            .await
    }

    /// Every answer the caller has saved in the flow (none for a visitor
    /// without a session).
    pub async fn own_answers(&self) -> Result<AnswerMap, WizardError> {
        let found = self.own_progress(&|_| true).await?;
        Ok(found.map(|(_, answers)| answers).unwrap_or_default())
    }

    /// The caller's progress row for the flow and the answers of the steps
    /// `wanted` accepts, in one round trip; no database work at all for a
    /// visitor without a session (who has no row).
    async fn own_progress(
        &self,
        wanted: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<(ProgressRecord, AnswerMap)>, WizardError> {
        let caller = self.caller;
        if caller.user().is_none() && caller.session().is_none() {
            return Ok(None);
        }
        let context = RlsContext::for_caller(caller);
        let flow_id = self.flow.id();
        let found =
            progress::fetch_own_with_answers_in_one_trip(self.db, &context, flow_id, wanted)
                .await?;
        Ok(found.map(|(record, answers)| (record, answers.into_iter().collect())))
    }

    /// `compute`'s answer, from the cache when it has it; stored there after
    /// a miss unless a write invalidated the entry meanwhile.
    async fn cached<T: Serialize + DeserializeOwned>(
        &self,
        entry: CacheEntry,
        compute: impl AsyncFnOnce() -> Result<T, WizardError>,
    ) -> Result<T, WizardError> {
        let subject = Subject::of(self.caller);
        let ticket = match &subject {
            Some(subject) => match self.cache.get_json::<T>(entry, subject).await {
                Lookup::Hit(value) => return Ok(value),
                Lookup::Miss(ticket) => ticket,
            },
            None => None,
        };
        let value = compute().await?;
        if let Some(subject) = &subject {
            self.cache
                .set_json(entry, subject, ticket.as_ref(), &value)
                .await;
        }
        Ok(value)
    }
}

/// Drops the caller's cached status and flow after a write committed (and,
/// for a user presenting a session, the session's too).
pub async fn forget_cached(cache: &Cache<'_>, caller: &Caller) {
    if let Some(subject) = Subject::of(caller) {
        cache.invalidate(&subject).await;
    }
    if let (Caller::User(_), Some(session)) = (caller, caller.session()) {
        cache.invalidate(&Subject::session(session)).await;
    }
}

/// Drops a user's cached reads when no request of theirs is at hand (the
/// identity provider deleted the account).
pub async fn forget_cached_user(cache: &Cache<'_>, user: &UserId) {
    cache.invalidate(&Subject::user(user)).await;
}
