//! Which steps apply for a caller: a step's `condition` and `skipWhen`
//! evaluated against the answers so far and the flags. Status, saving (the
//! next step), completion, the flow read and step validation all ask here, so
//! they agree on what "visible" means.

use super::answers::AnswerMap;
use super::checked::Flow;
use super::definition::StepDefinition;

impl Flow {
    /// Whether a step applies given the answers so far and the flags.
    pub fn is_step_visible(
        &self,
        step: &StepDefinition,
        answers: &AnswerMap,
        flags: &dyn Fn(&str) -> bool,
    ) -> bool {
        let shown = step
            .condition
            .as_ref()
            .is_none_or(|c| c.evaluate(&step.id, None, answers, flags));
        let skipped = step
            .skip_when
            .as_ref()
            .is_some_and(|c| c.evaluate(&step.id, None, answers, flags));
        shown && !skipped
    }

    /// The steps that apply after conditions and flags, in order.
    pub fn visible_steps(
        &self,
        answers: &AnswerMap,
        flags: &dyn Fn(&str) -> bool,
    ) -> Vec<&StepDefinition> {
        self.steps()
            .iter()
            .filter(|s| self.is_step_visible(s, answers, flags))
            .collect()
    }

    /// The visible step after `current` (which need not be visible itself).
    /// `None` at the end, or when `current` is not a step of this flow.
    pub fn next_step(
        &self,
        current: &str,
        answers: &AnswerMap,
        flags: &dyn Fn(&str) -> bool,
    ) -> Option<&StepDefinition> {
        let index = self.steps().iter().position(|s| s.id == current)?;
        self.steps()[index + 1..]
            .iter()
            .find(|s| self.is_step_visible(s, answers, flags))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::wizard::flow::{AnswerMap, default_flow};

    fn no_flags(_: &str) -> bool {
        false
    }

    /// The answers of a caller whose organization has `size` people.
    fn organization_of(size: &str) -> AnswerMap {
        let mut answers = AnswerMap::new();
        answers.insert("organization".into(), json!({ "size": size }));
        answers
    }

    #[test]
    fn the_team_step_is_skipped_for_a_single_person_organization() {
        let flow = default_flow().expect("parses");
        let mut answers = organization_of("1");
        let on = |k: &str| k == "teamInvites";
        let ids: Vec<&str> = flow
            .visible_steps(&answers, &on)
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert!(!ids.contains(&"team"));
        answers = organization_of("2-10");
        assert!(
            flow.visible_steps(&answers, &on)
                .iter()
                .any(|s| s.id == "team")
        );
    }

    #[test]
    fn the_team_step_is_hidden_when_the_team_invites_flag_is_off() {
        let flow = default_flow().expect("parses");
        let answers = organization_of("11-50");
        assert!(
            !flow
                .visible_steps(&answers, &no_flags)
                .iter()
                .any(|s| s.id == "team")
        );
    }

    #[test]
    fn next_step_skips_hidden_steps() {
        let flow = default_flow().expect("parses");
        let mut answers = organization_of("1");
        let on = |k: &str| k == "teamInvites";
        let next = flow
            .next_step("goals", &answers, &on)
            .map(|s| s.id.as_str());
        assert_eq!(next, Some("preferences"));
        answers = organization_of("2-10");
        let next = flow
            .next_step("goals", &answers, &on)
            .map(|s| s.id.as_str());
        assert_eq!(next, Some("team"));
        assert!(flow.next_step("review", &answers, &on).is_none());
        assert!(flow.next_step("nope", &answers, &on).is_none());
    }
}
