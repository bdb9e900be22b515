//! Where a caller stands: computed from the stored progress, the flow and the
//! flags, without touching the database (the caller reads the row first).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::progress::{ProgressRecord, ProgressState};
use crate::monitoring::{write_json_string, write_json_unsigned};
use crate::wizard::flow::{AnswerMap, Flow};

/// The answer of `GET /api/onboarding/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub authenticated: bool,
    pub state: OnboardingState,
    #[schema(required = true)]
    pub current_step: Option<String>,
    pub completed_steps: Vec<String>,
    #[schema(required = true)]
    pub next_step: Option<String>,
    pub progress: StatusProgress,
    pub flow_id: String,
    pub flow_version: u32,
    /// Where the Next.js middleware should send the user.
    pub redirect_to: String,
}

/// How far the caller is: `not_started`, `in_progress` or `completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnboardingState {
    NotStarted,
    InProgress,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusProgress {
    pub completed: usize,
    pub total: usize,
    pub percent: u8,
}

/// Paths the status points the wizard at.
#[derive(Debug, Clone)]
pub struct RedirectPaths {
    /// The wizard's base path; a step is `{base}/{step}`.
    pub wizard_base: String,
    /// Where a user who has completed onboarding goes.
    pub done: String,
}

impl Default for RedirectPaths {
    fn default() -> Self {
        Self {
            wizard_base: "/onboarding".into(),
            done: "/".into(),
        }
    }
}

impl Status {
    /// The JSON the derived `Serialize` writes, byte for byte, written
    /// directly: the status is the answer to every navigation, and through
    /// `serde_json` its keys alone, escaped one byte at a time like any
    /// string, cost more than the rest of the answer (2,900 instructions
    /// more per status miss than this; `scripts/count-instructions`,
    /// README: Benchmark).
    pub fn to_json(&self) -> String {
        let optional = |out: &mut String, text: &Option<String>| match text {
            Some(text) => write_json_string(out, text),
            None => out.push_str("null"),
        };
        let mut out = String::with_capacity(256);
        out.push_str("{\"authenticated\":");
        out.push_str(if self.authenticated { "true" } else { "false" });
        out.push_str(",\"state\":");
        out.push_str(match self.state {
            OnboardingState::NotStarted => "\"not_started\"",
            OnboardingState::InProgress => "\"in_progress\"",
            OnboardingState::Completed => "\"completed\"",
        });
        out.push_str(",\"currentStep\":");
        optional(&mut out, &self.current_step);
        out.push_str(",\"completedSteps\":[");
        for (index, step) in self.completed_steps.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            write_json_string(&mut out, step);
        }
        out.push_str("],\"nextStep\":");
        optional(&mut out, &self.next_step);
        out.push_str(",\"progress\":{\"completed\":");
        write_json_unsigned(&mut out, self.progress.completed as u64);
        out.push_str(",\"total\":");
        write_json_unsigned(&mut out, self.progress.total as u64);
        out.push_str(",\"percent\":");
        write_json_unsigned(&mut out, u64::from(self.progress.percent));
        out.push_str("},\"flowId\":");
        write_json_string(&mut out, &self.flow_id);
        out.push_str(",\"flowVersion\":");
        write_json_unsigned(&mut out, u64::from(self.flow_version));
        out.push_str(",\"redirectTo\":");
        write_json_string(&mut out, &self.redirect_to);
        out.push('}');
        out
    }
}

/// Computes the status from the caller's row (if any) and its answers. The
/// row is taken, not borrowed: its completed steps and current step become
/// the status's own, where a borrowed row would be copied string by string
/// on every status read.
pub fn compute(
    flow: &Flow,
    flags: &dyn Fn(&str) -> bool,
    authenticated: bool,
    record: Option<ProgressRecord>,
    answers: &AnswerMap,
    paths: &RedirectPaths,
) -> Status {
    let visible: Vec<&str> = flow
        .visible_steps(answers, flags)
        .into_iter()
        .map(|step| step.id.as_str())
        .collect();
    let total = visible.len();
    let (state, completed_steps, current_step) = match record {
        None => (OnboardingState::NotStarted, Vec::new(), None),
        Some(record) if record.state == ProgressState::Completed => {
            (OnboardingState::Completed, record.completed_steps, None)
        }
        Some(record) => (
            OnboardingState::InProgress,
            record.completed_steps,
            record.current_step,
        ),
    };
    let completed_visible = visible
        .iter()
        .filter(|step| completed_steps.iter().any(|done| done == *step))
        .count();
    let (next_step, completed) = if state == OnboardingState::Completed {
        (None, total)
    } else {
        (
            visible
                .iter()
                .find(|step| !completed_steps.iter().any(|done| done == *step))
                .map(|step| step.to_string()),
            completed_visible,
        )
    };
    let percent = (completed * 100).checked_div(total).unwrap_or(100) as u8;
    let redirect_to = if state == OnboardingState::Completed {
        paths.done.clone()
    } else {
        let step = next_step
            .as_deref()
            .or_else(|| visible.last().copied())
            .unwrap_or("");
        // `concat`, not `format!`: one exact allocation on every status.
        [paths.wizard_base.as_str(), "/", step].concat()
    };
    Status {
        authenticated,
        state,
        current_step,
        completed_steps,
        next_step,
        progress: StatusProgress {
            completed,
            total,
            percent,
        },
        flow_id: flow.id().to_string(),
        flow_version: flow.version(),
        redirect_to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wizard::flow::default_flow;
    use chrono::Utc;
    use serde_json::json;

    #[test]
    fn the_written_json_is_serdes_byte_for_byte() {
        let awkward = "a \"quoted\" \\ step\n\t\u{1}\u{7f} é 🚀";
        let mut statuses = Vec::new();
        for state in [
            OnboardingState::NotStarted,
            OnboardingState::InProgress,
            OnboardingState::Completed,
        ] {
            for (current, completed, next) in [
                (None, vec![], None),
                (Some("profile"), vec!["welcome"], Some("team")),
                (Some(awkward), vec!["welcome", awkward, ""], Some(awkward)),
            ] {
                statuses.push(Status {
                    authenticated: state != OnboardingState::NotStarted,
                    state,
                    current_step: current.map(str::to_string),
                    completed_steps: completed.into_iter().map(str::to_string).collect(),
                    next_step: next.map(str::to_string),
                    progress: StatusProgress {
                        completed: 3,
                        total: usize::MAX,
                        percent: u8::MAX,
                    },
                    flow_id: awkward.to_string(),
                    flow_version: u32::MAX,
                    redirect_to: "/onboarding/profile?from=\"x\"".to_string(),
                });
            }
        }
        for status in statuses {
            let written = status.to_json();
            assert_eq!(written, serde_json::to_string(&status).unwrap());
            assert_eq!(serde_json::from_str::<Status>(&written).unwrap(), status);
        }
    }

    fn record(completed: &[&str], current: &str, state: ProgressState) -> ProgressRecord {
        ProgressRecord {
            id: uuid::Uuid::nil(),
            user_id: Some("u".into()),
            organization_id: None,
            flow_id: "default".into(),
            flow_version: 1,
            state,
            current_step: Some(current.into()),
            completed_steps: completed.iter().map(|s| s.to_string()).collect(),
            row_version: 1,
            updated_at: Utc::now(),
        }
    }

    fn flags(key: &str) -> bool {
        key == "teamInvites"
    }

    /// The status of a caller (signed in or not) with `record` and `answers`,
    /// with the default redirect paths.
    fn status_of(
        flow: &Flow,
        signed_in: bool,
        record: Option<ProgressRecord>,
        answers: &AnswerMap,
    ) -> Status {
        compute(
            flow,
            &flags,
            signed_in,
            record,
            answers,
            &RedirectPaths::default(),
        )
    }

    #[test]
    fn a_caller_without_progress_has_not_started_and_is_sent_to_the_first_step() {
        let flow = default_flow().unwrap();
        let status = status_of(&flow, false, None, &AnswerMap::new());
        assert_eq!(status.state, OnboardingState::NotStarted);
        assert_eq!(status.next_step.as_deref(), Some("profile"));
        assert_eq!(status.redirect_to, "/onboarding/profile");
        assert_eq!(status.progress.completed, 0);
    }

    #[test]
    fn a_one_person_organization_skips_the_team_step_in_the_total() {
        let flow = default_flow().unwrap();
        let mut answers = AnswerMap::new();
        answers.insert("organization".into(), json!({"size": "1"}));
        let with_team = status_of(&flow, true, None, &AnswerMap::new());
        let without = status_of(&flow, true, None, &answers);
        assert_eq!(without.progress.total + 1, with_team.progress.total);
    }

    #[test]
    fn the_next_step_is_the_first_visible_step_not_completed() {
        let flow = default_flow().unwrap();
        let record = record(
            &["profile", "organization"],
            "goals",
            ProgressState::InProgress,
        );
        let status = status_of(&flow, true, Some(record), &AnswerMap::new());
        assert_eq!(status.next_step.as_deref(), Some("goals"));
        assert_eq!(status.progress.completed, 2);
        assert!(status.progress.percent > 0 && status.progress.percent < 100);
    }

    #[test]
    fn a_completed_flow_redirects_out_of_the_wizard() {
        let flow = default_flow().unwrap();
        let record = record(&["profile"], "review", ProgressState::Completed);
        let status = status_of(&flow, true, Some(record), &AnswerMap::new());
        assert_eq!(status.state, OnboardingState::Completed);
        assert_eq!(status.redirect_to, "/");
        assert_eq!(status.progress.percent, 100);
        assert_eq!(status.next_step, None);
    }
}
