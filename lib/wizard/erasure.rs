//! A user's onboarding data at the end of its life: erased (by the user, or
//! by the identity provider when the account is deleted) or handed over as
//! an export. What "everything of a user" means, and what happens to their
//! organizations, is the database's one definition (`db::erasure`; README:
//! "Erasure and export").

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::UserId;
use crate::db::Tx;
use crate::db::erasure::{
    self, ExportedAiPreferences, ExportedAiSuggestion, ExportedAnswer, ExportedEvent,
    ExportedInvitation, ExportedMembership, ExportedOrganization, ExportedProfile,
};
use crate::wizard::WizardError;

pub use crate::db::erasure::Erasure;

/// Erases the signed-in caller of the transaction: the user its context
/// names, never one chosen by input.
pub async fn erase_caller(tx: &Tx<'_>) -> Result<Erasure, WizardError> {
    Ok(erasure::erase_caller(tx).await?)
}

/// Erases `user`, for the identity provider's `user.deleted` event: the
/// transaction must be in the login role's context, the only one allowed to.
pub async fn erase_user(tx: &Tx<'_>, user: &UserId) -> Result<Erasure, WizardError> {
    Ok(erasure::erase_user(tx, user.as_str()).await?)
}

/// One flow's progress and its saved answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedProgress {
    pub flow_id: String,
    pub flow_version: i32,
    /// `in_progress` or `completed`.
    #[schema(value_type = crate::db::erasure::ProgressStateName)]
    pub state: String,
    pub current_step: Option<String>,
    pub completed_steps: Vec<String>,
    pub organization_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Saved answers by step.
    pub answers: BTreeMap<String, ExportedAnswer>,
}

/// Everything of the caller's onboarding (`GET /api/onboarding/me/export`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    pub user_id: String,
    pub exported_at: DateTime<Utc>,
    pub profile: Option<ExportedProfile>,
    pub progress: Vec<ExportedProgress>,
    pub memberships: Vec<ExportedMembership>,
    /// The organizations the caller belongs to or created.
    pub organizations: Vec<ExportedOrganization>,
    pub invitations_sent: Vec<ExportedInvitation>,
    pub ai_preferences: Option<ExportedAiPreferences>,
    pub ai_suggestions: Vec<ExportedAiSuggestion>,
    /// Funnel events recorded while signed in.
    pub events: Vec<ExportedEvent>,
}

/// Reads everything of the caller, each table under their own policies, in
/// the caller's transaction (the reads are pipelined on its connection).
pub async fn export(tx: &Tx<'_>, user: &UserId) -> Result<Export, WizardError> {
    use futures_util::future::try_join3;
    let ((profile, progress, answers), (memberships, organizations, invitations_sent), rest) =
        try_join3(
            try_join3(
                erasure::profile(tx),
                erasure::progress(tx),
                erasure::answers(tx),
            ),
            try_join3(
                erasure::memberships(tx),
                erasure::organizations(tx),
                erasure::invitations_sent(tx),
            ),
            try_join3(
                erasure::ai_preferences(tx),
                erasure::ai_suggestions(tx),
                erasure::events(tx),
            ),
        )
        .await?;
    let (ai_preferences, ai_suggestions, events) = rest;
    let mut answers_by_progress: BTreeMap<_, BTreeMap<String, ExportedAnswer>> = BTreeMap::new();
    for (progress_id, step, answer) in answers {
        answers_by_progress
            .entry(progress_id)
            .or_default()
            .insert(step, answer);
    }
    let progress = progress
        .into_iter()
        .map(|row| ExportedProgress {
            answers: answers_by_progress.remove(&row.id).unwrap_or_default(),
            flow_id: row.flow_id,
            flow_version: row.flow_version,
            state: row.state,
            current_step: row.current_step,
            completed_steps: row.completed_steps,
            organization_id: row.organization_id,
            started_at: row.started_at,
            completed_at: row.completed_at,
            updated_at: row.updated_at,
        })
        .collect();
    Ok(Export {
        user_id: user.as_str().to_string(),
        exported_at: Utc::now(),
        profile,
        progress,
        memberships,
        organizations,
        invitations_sent,
        ai_preferences,
        ai_suggestions,
        events,
    })
}
