//! The rows to write when the wizard is completed. Pure: the caller writes the
//! SQL. Field names follow the default flow (`profile.fullName`,
//! `preferences.timezone`, `organization.slug`, `team.invites`, …).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::wizard::flow::{AnswerMap, Flow};
use crate::wizard::validation::{FieldError, Options, StepAnswers, Submission, validate_with};

/// Row for the user's profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileRow {
    /// `profile.fullName`.
    pub full_name: String,
    /// `profile.jobRole`.
    pub job_role: Option<String>,
    /// `preferences.timezone` (IANA name).
    pub timezone: String,
    /// `preferences.locale`.
    pub locale: String,
    /// Every boolean of the `preferences` step, e.g.
    /// `{"productUpdates": true, "weeklyDigest": false}`.
    pub notifications: Value,
}

/// Row for the organization, when the `organization` step applies and is answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrganizationRow {
    /// `organization.name`.
    pub name: String,
    /// `organization.slug`.
    pub slug: String,
    /// `organization.size`.
    pub size: Option<String>,
    /// `organization.industry`.
    pub industry: Option<String>,
    /// `organization.website`.
    pub website: Option<String>,
}

/// One invitation to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitationRow {
    /// Lowercased address.
    pub email: String,
    /// Always `member` for wizard invitations.
    pub role: &'static str,
}

/// Everything to write in the completion transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletionPlan {
    /// Profile row.
    pub profile: ProfileRow,
    /// Organization row, if the step applies.
    pub organization: Option<OrganizationRow>,
    /// Invitations (empty when the team step is hidden or unanswered).
    pub invitations: Vec<InvitationRow>,
}

/// Why a step blocks completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingStepReason {
    /// A required visible step has no answers.
    Missing,
    /// A visible step's answers do not validate as complete.
    Incomplete,
    /// The flow lacks a field the plan needs (e.g. `profile.fullName`).
    NotInFlow,
}

/// One step that blocks completion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingStep {
    /// Step id.
    pub step: String,
    /// Why.
    pub reason: MissingStepReason,
    /// Validation errors, for `incomplete`.
    pub errors: Vec<FieldError>,
}

/// The steps that block completion, in flow order.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("onboarding incomplete: {}", .steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>().join(", "))]
pub struct MissingSteps {
    /// The blocking steps.
    pub steps: Vec<MissingStep>,
}

/// Builds the completion plan, or lists the steps that block it.
///
/// Visible steps are re-validated as complete with the current answers and
/// flags, because a change to an earlier answer can make a later field
/// required. Steps without fields (review) need no answers. Answers of hidden
/// steps are ignored (e.g. no invitations for a one-person organization).
pub fn completion_plan(
    flow: &Flow,
    answers: &BTreeMap<String, StepAnswers>,
    flags: &dyn Fn(&str) -> bool,
) -> Result<CompletionPlan, MissingSteps> {
    let json: AnswerMap = answers
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    let mut missing = Vec::new();
    let mut visible = BTreeMap::new();
    for step in flow.visible_steps(&json, flags) {
        if step.fields.is_empty() {
            continue;
        }
        let Some(raw) = json.get(&step.id) else {
            if !step.optional {
                missing.push(MissingStep {
                    step: step.id.clone(),
                    reason: MissingStepReason::Missing,
                    errors: Vec::new(),
                });
            }
            continue;
        };
        let options = Options {
            submission: Submission::Complete,
            context: Some((&json, flags)),
            check_step_visibility: true,
        };
        match validate_with(flow, &step.id, raw, &options) {
            Ok(parsed) => {
                visible.insert(step.id.as_str(), parsed);
            }
            Err(e) => missing.push(MissingStep {
                step: step.id.clone(),
                reason: MissingStepReason::Incomplete,
                errors: e.into_errors(),
            }),
        }
    }
    if !missing.is_empty() {
        return Err(MissingSteps { steps: missing });
    }

    let text = |step: &str, field: &str| {
        visible
            .get(step)
            .and_then(|a| a.text(field))
            .map(str::to_owned)
    };
    let mut not_in_flow = |step: &str, field: &str| {
        missing.push(MissingStep {
            step: step.to_owned(),
            reason: MissingStepReason::NotInFlow,
            errors: vec![FieldError {
                pointer: format!("/{field}"),
                code: crate::wizard::validation::ErrorCode::Required,
                message: format!("the completion plan needs `{step}.{field}`"),
                limit: None,
                step: None,
            }],
        });
    };
    let full_name = text("profile", "fullName");
    let timezone = text("preferences", "timezone");
    let locale = text("preferences", "locale");
    if full_name.is_none() {
        not_in_flow("profile", "fullName");
    }
    if timezone.is_none() {
        not_in_flow("preferences", "timezone");
    }
    if locale.is_none() {
        not_in_flow("preferences", "locale");
    }
    let (Some(full_name), Some(timezone), Some(locale)) = (full_name, timezone, locale) else {
        return Err(MissingSteps { steps: missing });
    };
    let notifications: serde_json::Map<String, Value> = visible
        .get("preferences")
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| v.as_bool().map(|b| (k.to_owned(), Value::Bool(b))))
                .collect()
        })
        .unwrap_or_default();
    let organization = match (text("organization", "name"), text("organization", "slug")) {
        (Some(name), Some(slug)) => Some(OrganizationRow {
            name,
            slug,
            size: text("organization", "size"),
            industry: text("organization", "industry"),
            website: text("organization", "website"),
        }),
        _ => None,
    };
    let invitations = visible
        .get("team")
        .and_then(|a| a.list("invites"))
        .unwrap_or_default()
        .iter()
        .map(|email| InvitationRow {
            email: email.to_lowercase(),
            role: "member",
        })
        .collect();
    Ok(CompletionPlan {
        profile: ProfileRow {
            full_name,
            job_role: text("profile", "jobRole"),
            timezone,
            locale,
            notifications: Value::Object(notifications),
        },
        organization,
        invitations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wizard::flow::default_flow;
    use crate::wizard::validation::{Submission, validate_step};
    use serde_json::json;

    fn on(key: &str) -> bool {
        key == "teamInvites"
    }

    fn answer_all(size: &str) -> BTreeMap<String, StepAnswers> {
        let flow = default_flow().expect("parses");
        let raw = [
            (
                "profile",
                json!({ "fullName": "Ada Lovelace", "jobRole": "founder" }),
            ),
            (
                "organization",
                json!({ "name": "Acme", "slug": "acme", "size": size, "industry": "saas" }),
            ),
            ("goals", json!({ "useCases": ["analytics"] })),
            (
                "team",
                json!({ "invites": ["Grace@Example.com", "alan@example.com"] }),
            ),
            (
                "preferences",
                json!({ "productUpdates": true, "weeklyDigest": false,
                                    "timezone": "Europe/London", "locale": "en-GB" }),
            ),
        ];
        let mut json_answers = AnswerMap::new();
        let mut out = BTreeMap::new();
        for (step, value) in raw {
            // Validate against the context as it would be at that point, but
            // keep team answers even when the step is hidden, to show they are ignored.
            let parsed = match validate_step(
                &flow,
                step,
                &value,
                &json_answers,
                &on,
                Submission::Complete,
            ) {
                Ok(p) => p,
                Err(_) => crate::wizard::transform::from_stored(&flow, step, &value)
                    .expect("stored shape"),
            };
            json_answers.insert(step.into(), parsed.to_json());
            out.insert(step.to_owned(), parsed);
        }
        out
    }

    #[test]
    fn builds_profile_organization_and_lowercased_invitations() {
        let flow = default_flow().expect("parses");
        let plan = completion_plan(&flow, &answer_all("2-10"), &on).expect("complete");
        assert_eq!(plan.profile.full_name, "Ada Lovelace");
        assert_eq!(plan.profile.job_role.as_deref(), Some("founder"));
        assert_eq!(plan.profile.timezone, "Europe/London");
        assert_eq!(plan.profile.locale, "en-GB");
        assert_eq!(
            plan.profile.notifications,
            json!({ "productUpdates": true, "weeklyDigest": false })
        );
        let org = plan.organization.expect("organization");
        assert_eq!((org.name.as_str(), org.slug.as_str()), ("Acme", "acme"));
        assert_eq!(org.size.as_deref(), Some("2-10"));
        assert_eq!(org.website, None);
        let emails: Vec<&str> = plan.invitations.iter().map(|i| i.email.as_str()).collect();
        assert_eq!(emails, ["grace@example.com", "alan@example.com"]);
        assert!(plan.invitations.iter().all(|i| i.role == "member"));
    }

    #[test]
    fn ignores_invitations_of_a_hidden_team_step() {
        let flow = default_flow().expect("parses");
        let plan = completion_plan(&flow, &answer_all("1"), &on).expect("complete");
        assert!(plan.invitations.is_empty());
        let plan = completion_plan(&flow, &answer_all("2-10"), &|_| false).expect("complete");
        assert!(plan.invitations.is_empty());
    }

    #[test]
    fn lists_every_missing_or_incomplete_required_step() {
        let flow = default_flow().expect("parses");
        let mut answers = answer_all("2-10");
        answers.remove("goals");
        answers.remove("team"); // optional: not listed
        let draft = validate_step(
            &flow,
            "preferences",
            &json!({ "productUpdates": true }),
            &AnswerMap::new(),
            &on,
            Submission::Draft,
        )
        .expect("valid draft");
        answers.insert("preferences".into(), draft);
        let err = completion_plan(&flow, &answers, &on).expect_err("incomplete");
        let listed: Vec<(&str, MissingStepReason)> = err
            .steps
            .iter()
            .map(|s| (s.step.as_str(), s.reason))
            .collect();
        assert_eq!(
            listed,
            [
                ("goals", MissingStepReason::Missing),
                ("preferences", MissingStepReason::Incomplete)
            ]
        );
        assert_eq!(err.steps[1].errors.len(), 3);
    }
}
