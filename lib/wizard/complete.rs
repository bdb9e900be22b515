//! Completing onboarding: every required visible step must be complete; the
//! completion transform turns the answers into the profile, organization,
//! ownership and invitations in the same transaction that marks the flow
//! completed. Repeating it answers the same and writes nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::db::progress::{self, ProgressState};
use crate::db::{RlsContext, Tx, domain};
use crate::wizard::WizardError;
use crate::wizard::flow::{AnswerMap, Flow};
use crate::wizard::status::{self, RedirectPaths, Status};
use crate::wizard::transform::MissingStepReason;
use crate::wizard::transform::{completion_plan, from_stored};
use crate::wizard::validation::StepAnswers;
use crate::wizard::validation::{ErrorCode, FieldError};

/// The signed-in caller completing onboarding.
pub struct Completer<'a> {
    pub user_id: &'a str,
    /// The organization active in their token, if any: it becomes the id of
    /// the organization the wizard creates.
    pub organization_id: Option<&'a str>,
    pub session_hash: Option<String>,
}

/// The answer of `POST /api/onboarding/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Completed {
    pub status: Status,
    /// The organization the wizard created or filled in, if the flow has one.
    #[schema(required = true)]
    pub organization_id: Option<String>,
    /// Invitations sent by this request (0 when repeated).
    pub invitations: usize,
}

const SLUG_TAKEN: &str = "organizations_slug_key";

/// Completes the flow inside the caller's transaction (see the module docs).
pub async fn complete(
    tx: &Tx<'_>,
    completer: &Completer<'_>,
    flow: &Flow,
    flags: &(dyn Fn(&str) -> bool + Sync),
    paths: &RedirectPaths,
) -> Result<Completed, WizardError> {
    let Some((record, stored)) = progress::fetch_own_for_update_with_answers(tx, flow.id()).await?
    else {
        return Err(WizardError::invalid("onboarding has not been started"));
    };
    let answer_map: AnswerMap = stored
        .iter()
        .map(|(step, answer)| (step.clone(), answer.answers.clone()))
        .collect();
    if record.state == ProgressState::Completed {
        let organization_id = record.organization_id.clone();
        let status = status::compute(flow, flags, true, Some(record), &answer_map, paths);
        let body = Completed {
            status,
            organization_id,
            invitations: 0,
        };
        return Ok(body);
    }

    let mut typed: BTreeMap<String, StepAnswers> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for (step, answer) in &stored {
        if !answer.completed {
            continue;
        }
        match from_stored(flow, step, &answer.answers) {
            Ok(parsed) => {
                typed.insert(step.clone(), parsed);
            }
            Err(errors) => unreadable.extend(errors.in_step(step).into_errors()),
        }
    }
    if !unreadable.is_empty() {
        return Err(WizardError::Invalid {
            detail: "some saved answers no longer fit the flow; save those steps again".into(),
            errors: unreadable,
        });
    }
    let plan = completion_plan(flow, &typed, flags).map_err(|missing| {
        let mut errors = Vec::new();
        for step in missing.steps {
            errors.push(FieldError {
                pointer: String::new(),
                code: match step.reason {
                    MissingStepReason::Missing => ErrorCode::StepMissing,
                    MissingStepReason::Incomplete => ErrorCode::StepIncomplete,
                    MissingStepReason::NotInFlow => ErrorCode::StepNotInFlow,
                },
                message: format!("step `{}` must be completed first", step.step),
                limit: None,
                step: Some(step.step.clone()),
            });
            errors.extend(step.errors.into_iter().map(|e| e.in_step(&step.step)));
        }
        WizardError::Invalid {
            detail: "some required steps are not completed".into(),
            errors,
        }
    })?;

    domain::upsert_profile(
        tx,
        &domain::Profile {
            full_name: Some(&plan.profile.full_name),
            job_role: plan.profile.job_role.as_deref(),
            timezone: Some(&plan.profile.timezone),
            locale: Some(&plan.profile.locale),
            notifications: &plan.profile.notifications,
        },
    )
    .await?;

    let mut organization_id = completer.organization_id.map(str::to_string);
    let mut invitations = 0;
    if let Some(org) = &plan.organization {
        let id = organization_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let created = domain::create_organization(
            tx,
            &domain::Organization {
                id: &id,
                name: &org.name,
                slug: &org.slug,
                size: org.size.as_deref(),
                industry: org.industry.as_deref(),
                website: org.website.as_deref(),
            },
        )
        .await
        .map_err(|error| {
            if error.constraint() == Some(SLUG_TAKEN) {
                WizardError::Invalid {
                    detail: "the organization's slug is taken".into(),
                    errors: vec![FieldError {
                        pointer: "/slug".into(),
                        code: ErrorCode::SlugTaken,
                        message: "another organization uses this slug".into(),
                        limit: None,
                        step: Some("organization".into()),
                    }],
                }
            } else {
                WizardError::from(error)
            }
        })?;
        if created && organization_id.is_none() {
            // The new organization is the caller's active one from here on.
            domain::switch_context(
                tx,
                &RlsContext::user(
                    completer.user_id,
                    Some(&id),
                    completer.session_hash.as_deref(),
                ),
            )
            .await?;
        }
        organization_id = Some(id);
        if !plan.invitations.is_empty() && domain::is_admin_of_active_organization(tx).await? {
            for invitation in &plan.invitations {
                domain::invite(tx, &invitation.email, invitation.role).await?;
                invitations += 1;
            }
        }
    }

    let record = progress::mark_completed(tx, record.id, organization_id.as_deref())
        .await?
        .ok_or(crate::db::DbError::MissingRow("mark_completed"))?;
    crate::outbox::completed(tx, &record).await?;
    let status = status::compute(flow, flags, true, Some(record), &answer_map, paths);
    let body = Completed {
        status,
        organization_id,
        invitations,
    };
    Ok(body)
}
