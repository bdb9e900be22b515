//! After sign-in: moving an anonymous session's drafts to the user.
//!
//! Rule when both have an answer for a step: **the more recently saved answer
//! wins** (the visitor typed the session's answers just before signing in; an
//! older account answer is what they are replacing). On a tie the account's
//! answer is kept. The response lists, per flow, which steps came from the
//! session and which were kept. Merging again finds nothing and changes nothing.

use serde::Serialize;

use crate::db::answers::{self, Write};
use crate::db::progress;
use crate::db::{Statement, Tx};
use crate::wizard::WizardError;

/// What a merge did to one flow's answers.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MergedFlow {
    pub flow_id: String,
    /// Steps whose answer now comes from the session.
    pub from_session: Vec<String>,
    /// Steps where the account's newer (or equally recent) answer was kept.
    pub kept: Vec<String>,
}

/// The answer of `POST /api/onboarding/session/merge`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Merged {
    pub merged: Vec<MergedFlow>,
}

const MARK_SESSION_MERGED: Statement = Statement::new(
    "update onboarding.anonymous_sessions set merged_into_user_id = onboarding.current_user_id()
     where id_hash = onboarding.current_session_id()",
    &[],
);

/// Merges the session presented alongside the user's token.
/// Moves the presented session's drafts to the signed-in user, inside the
/// transaction of a context that carries both.
pub async fn merge(tx: &Tx<'_>) -> Result<Merged, WizardError> {
    let mut merged = Vec::new();
    for session_row in progress::presented_session_rows(tx).await? {
        let Some(user_row) = progress::fetch_own_for_update(tx, &session_row.flow_id).await? else {
            let session_answers = answers::all_for_progress(tx, session_row.id).await?;
            progress::adopt(tx, session_row.id).await?;
            let from_session: Vec<String> = session_answers.into_keys().collect();
            crate::outbox::merged(tx, &session_row, &from_session, &[]).await?;
            merged.push(MergedFlow {
                flow_id: session_row.flow_id,
                from_session,
                kept: Vec::new(),
            });
            continue;
        };
        let session_answers = answers::all_for_progress(tx, session_row.id).await?;
        let user_answers = answers::all_for_progress(tx, user_row.id).await?;
        let mut from_session = Vec::new();
        let mut kept = Vec::new();
        let mut completed: Vec<String> = user_row.completed_steps.clone();
        for (step, theirs) in &session_answers {
            let write = match user_answers.get(step) {
                Some(ours) if ours.updated_at >= theirs.updated_at => {
                    kept.push(step.clone());
                    continue;
                }
                Some(ours) => Write::ReplaceAt(ours.version),
                None => Write::Insert,
            };
            answers::store(
                tx,
                user_row.id,
                step,
                &theirs.answers,
                theirs.completed,
                theirs.flow_version,
                write,
            )
            .await?
            .ok_or(crate::db::DbError::MissingRow("merge answer"))?;
            completed.retain(|done| done != step);
            if theirs.completed {
                completed.push(step.clone());
            }
            from_session.push(step.clone());
        }
        let current = session_row
            .current_step
            .clone()
            .or(user_row.current_step.clone())
            .unwrap_or_default();
        progress::record_step(tx, user_row.id, &completed, &current, user_row.flow_version).await?;
        progress::delete(tx, session_row.id).await?;
        crate::outbox::merged(tx, &user_row, &from_session, &kept).await?;
        merged.push(MergedFlow {
            flow_id: session_row.flow_id,
            from_session,
            kept,
        });
    }
    tx.query(&MARK_SESSION_MERGED, &[]).await?;
    Ok(Merged { merged })
}
