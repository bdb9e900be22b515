//! A user's whole onboarding data: erased, or read for export.
//!
//! Erasure is one database function, `onboarding.erase_caller()`
//! (migration `V20261201000200__erasure.sql`): it erases the user the
//! transaction's context names, and holds the one definition of everything
//! of a user. [`erase_caller`] runs it for a signed-in caller; [`erase_user`]
//! runs `onboarding.erase_user($1)`, the webhook's way in, which only the
//! login role may execute (context [`crate::db::RlsContext::login_role`]).
//!
//! The export reads run under the caller's own policies; each picks the
//! caller's rows among those visible to them (an organization admin also
//! sees members' progress and events, which are not theirs to export).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::{Json, Type};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{DbError, Statement, Tx};

/// The string sets of the export, as the database's check constraints allow
/// them: schemas only (the rows are read as strings).
#[allow(dead_code)]
mod sets {
    use serde::Serialize;
    use utoipa::ToSchema;

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ExportedAnswerStatus {
        Draft,
        Completed,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum MembershipRole {
        Owner,
        Admin,
        Member,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum InvitationRole {
        Admin,
        Member,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum InvitationStatus {
        Pending,
        Accepted,
        Revoked,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ExportedAiMode {
        Off,
        Suggest,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum SuggestionStatus {
        Pending,
        Accepted,
        Rejected,
        Invalid,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ProgressStateName {
        InProgress,
        Completed,
    }
}
pub use sets::*;

/// What an erasure did, per table (camelCase names, e.g. `stepAnswers`).
/// Erasing again finds nothing: every count is 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Erasure {
    /// Rows deleted: `progress`, `stepAnswers`, `userProfiles`,
    /// `organizations`, `memberships`, `invitations`,
    /// `organizationAiPolicies`, `aiPreferences`, `aiSuggestions`,
    /// `analyticsEvents`, `idempotencyKeys`, `anonymousSessions`.
    pub deleted: BTreeMap<String, i64>,
    /// Rows that stay with the user's id cleared: `organizations` that have
    /// another owner (`created_by`), and their AI policies (`updated_by`).
    pub anonymized: BTreeMap<String, i64>,
}

impl Erasure {
    /// Rows deleted in all.
    pub fn total_deleted(&self) -> i64 {
        self.deleted.values().sum()
    }
}

const ERASE_CALLER: Statement = Statement::new("select onboarding.erase_caller()", &[]);

const ERASE_USER: Statement = Statement::new("select onboarding.erase_user($1)", &[Type::TEXT]);

fn erasure(row: &Row) -> Result<Erasure, DbError> {
    let Json(erasure) = row.try_get::<_, Json<Erasure>>(0)?;
    Ok(erasure)
}

/// Erases the caller of the transaction's context (a signed-in user); the
/// database refuses any other caller.
pub async fn erase_caller(tx: &Tx<'_>) -> Result<Erasure, DbError> {
    erasure(&tx.query_one(&ERASE_CALLER, &[]).await?)
}

/// Erases `user_id`: only in the login role's context.
pub async fn erase_user(tx: &Tx<'_>, user_id: &str) -> Result<Erasure, DbError> {
    erasure(&tx.query_one(&ERASE_USER, &[&user_id]).await?)
}

// ---------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------

row_struct! {
    /// The caller's profile, as completing onboarding wrote it.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExportedProfile {
        pub full_name: Option<String>,
        pub job_role: Option<String>,
        pub timezone: Option<String>,
        pub locale: Option<String>,
        #[schema(value_type = Object)]
        pub notifications: Value,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

const PROFILE: Statement = Statement::new(
    "select full_name, job_role, timezone, locale, notifications, created_at, updated_at
     from onboarding.user_profiles
     where user_id = (select onboarding.current_user_id())",
    &[],
);

pub async fn profile(tx: &Tx<'_>) -> Result<Option<ExportedProfile>, DbError> {
    tx.query_opt_as(&PROFILE, &[], ExportedProfile::from_row)
        .await
}

row_struct! {
    /// One flow's progress; its answers are attached by the domain.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ProgressRow {
        pub id: Uuid,
        pub flow_id: String,
        pub flow_version: i32,
        pub state: String,
        pub current_step: Option<String>,
        pub completed_steps: Vec<String>,
        pub organization_id: Option<String>,
        pub started_at: DateTime<Utc>,
        pub completed_at: Option<DateTime<Utc>>,
        pub updated_at: DateTime<Utc>,
    }
}

const PROGRESS: Statement = Statement::new(
    "select id, flow_id, flow_version, state, current_step, completed_steps, organization_id,
            started_at, completed_at, updated_at
     from onboarding.progress
     where user_id = (select onboarding.current_user_id())
     order by flow_id",
    &[],
);

pub async fn progress(tx: &Tx<'_>) -> Result<Vec<ProgressRow>, DbError> {
    tx.query_as(&PROGRESS, &[], ProgressRow::from_row).await
}

row_struct! {
    /// One step's saved answer.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExportedAnswer {
        #[schema(value_type = Object)]
        pub answers: Value,
        /// `draft` or `completed`.
        #[schema(value_type = ExportedAnswerStatus)]
        pub status: String,
        pub flow_version: i32,
        pub version: i64,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

const ANSWERS: Statement = Statement::new(
    "select a.progress_id, a.step, a.answers, a.status, a.flow_version, a.version,
            a.created_at, a.updated_at
     from onboarding.step_answers a
     join onboarding.progress p on p.id = a.progress_id
     where p.user_id = (select onboarding.current_user_id())
     order by a.progress_id, a.step",
    &[],
);

/// The caller's answers: (progress id, step, answer).
pub async fn answers(tx: &Tx<'_>) -> Result<Vec<(Uuid, String, ExportedAnswer)>, DbError> {
    tx.query_as(&ANSWERS, &[], |row| {
        let answer = ExportedAnswer::from_row(row);
        (row.get("progress_id"), row.get("step"), answer)
    })
    .await
}

row_struct! {
    /// The caller's membership of an organization.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExportedMembership {
        pub organization_id: String,
        /// `owner`, `admin` or `member`.
        #[schema(value_type = MembershipRole)]
        pub role: String,
        pub created_at: DateTime<Utc>,
    }
}

const MEMBERSHIPS: Statement = Statement::new(
    "select organization_id, role, created_at
     from onboarding.memberships
     where user_id = (select onboarding.current_user_id())
     order by organization_id",
    &[],
);

pub async fn memberships(tx: &Tx<'_>) -> Result<Vec<ExportedMembership>, DbError> {
    tx.query_as(&MEMBERSHIPS, &[], ExportedMembership::from_row)
        .await
}

row_struct! {
    /// An organization the caller belongs to or created.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExportedOrganization {
        pub id: String,
        pub name: String,
        pub slug: String,
        pub size: Option<String>,
        pub industry: Option<String>,
        pub website: Option<String>,
        /// Whether the caller created it.
        pub created_by_you: bool,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

const ORGANIZATIONS: Statement = Statement::new(
    "select o.id, o.name, o.slug, o.size, o.industry, o.website,
            coalesce(o.created_by = (select onboarding.current_user_id()), false) as created_by_you,
            o.created_at, o.updated_at
     from onboarding.organizations o
     where o.created_by = (select onboarding.current_user_id())
        or o.id = any (array(select onboarding.caller_organization_ids(false)))
     order by o.id",
    &[],
);

pub async fn organizations(tx: &Tx<'_>) -> Result<Vec<ExportedOrganization>, DbError> {
    tx.query_as(&ORGANIZATIONS, &[], ExportedOrganization::from_row)
        .await
}

row_struct! {
    /// An invitation the caller sent.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExportedInvitation {
        pub id: Uuid,
        pub organization_id: String,
        pub email: String,
        /// `admin` or `member`.
        #[schema(value_type = InvitationRole)]
        pub role: String,
        /// `pending`, `accepted` or `revoked`.
        #[schema(value_type = InvitationStatus)]
        pub status: String,
        pub expires_at: DateTime<Utc>,
        pub created_at: DateTime<Utc>,
    }
}

const INVITATIONS: Statement = Statement::new(
    "select id, organization_id, email, role, status, expires_at, created_at
     from onboarding.invitations
     where invited_by = (select onboarding.current_user_id())
     order by created_at, id",
    &[],
);

pub async fn invitations_sent(tx: &Tx<'_>) -> Result<Vec<ExportedInvitation>, DbError> {
    tx.query_as(&INVITATIONS, &[], ExportedInvitation::from_row)
        .await
}

row_struct! {
    /// The caller's AI choice.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExportedAiPreferences {
        /// `off` or `suggest`.
        #[schema(value_type = ExportedAiMode)]
        pub mode: String,
        #[schema(value_type = Object)]
        pub field_overrides: Value,
        pub consent_version: Option<String>,
        pub chosen_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

const AI_PREFERENCES: Statement = Statement::new(
    "select mode, field_overrides, consent_version, chosen_at, updated_at
     from onboarding.ai_preferences
     where user_id = (select onboarding.current_user_id())",
    &[],
);

pub async fn ai_preferences(tx: &Tx<'_>) -> Result<Option<ExportedAiPreferences>, DbError> {
    tx.query_opt_as(&AI_PREFERENCES, &[], ExportedAiPreferences::from_row)
        .await
}

row_struct! {
    /// A suggestion made for the caller, and what they decided.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExportedAiSuggestion {
        pub id: Uuid,
        pub flow_id: String,
        pub step: String,
        pub field: String,
        pub prompt_key: String,
        pub prompt_version: i32,
        pub provider: String,
        pub model: String,
        /// The fields whose answers the prompt received (names, not values).
        pub input_fields: Vec<String>,
        /// The suggested value; `null` when the model's output was invalid.
        pub value: Option<Value>,
        /// `pending`, `accepted`, `rejected` or `invalid`.
        #[schema(value_type = SuggestionStatus)]
        pub status: String,
        pub decided_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
    }
}

const AI_SUGGESTIONS: Statement = Statement::new(
    "select id, flow_id, step, field, prompt_key, prompt_version, provider, model, input_fields,
            value, status, decided_at, created_at
     from onboarding.ai_suggestions
     where user_id = (select onboarding.current_user_id())
     order by created_at, id",
    &[],
);

pub async fn ai_suggestions(tx: &Tx<'_>) -> Result<Vec<ExportedAiSuggestion>, DbError> {
    tx.query_as(&AI_SUGGESTIONS, &[], ExportedAiSuggestion::from_row)
        .await
}

row_struct! {
    /// A funnel event recorded while the caller was signed in.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExportedEvent {
        #[serde(rename = "type")]
        pub event_type: String,
        pub flow_id: String,
        pub flow_version: i32,
        pub step: Option<String>,
        #[schema(value_type = Object)]
        pub properties: Value,
        pub organization_id: Option<String>,
        pub occurred_at: DateTime<Utc>,
    }
}

const EVENTS: Statement = Statement::new(
    "select event_type, flow_id, flow_version, step, properties, organization_id, occurred_at
     from onboarding.analytics_events
     where user_id = (select onboarding.current_user_id())
     order by occurred_at, id",
    &[],
);

pub async fn events(tx: &Tx<'_>) -> Result<Vec<ExportedEvent>, DbError> {
    tx.query_as(&EVENTS, &[], ExportedEvent::from_row).await
}
