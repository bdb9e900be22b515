//! Request-body validation over every step of the default flow, as a draft and
//! as a completed answer. Input: one byte of flags, then a JSON document; an
//! object key `__context` (an object) becomes the other steps' answers.
//! Invariant: what validation accepts, re-validated, is accepted unchanged.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use onboarding::wizard::flow::{AnswerMap, Flow, default_flow};
use onboarding::wizard::validation::{Submission, validate_step};
use serde_json::Value;

static FLOW: LazyLock<Flow> = LazyLock::new(|| default_flow().expect("the default flow parses"));

fuzz_target!(|data: &[u8]| {
    let Some((&bits, json)) = data.split_first() else {
        return;
    };
    let Ok(mut raw) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let mut context = AnswerMap::new();
    if let Some(Value::Object(map)) = raw.as_object_mut().and_then(|o| o.remove("__context")) {
        context.extend(map);
    }
    let flags = move |key: &str| match key {
        "teamInvites" => bits & 1 != 0,
        "aiSuggestions" => bits & 2 != 0,
        _ => bits & 4 != 0,
    };
    for step in FLOW.steps() {
        for submission in [Submission::Complete, Submission::Draft] {
            let validate =
                |raw: &Value| validate_step(&FLOW, &step.id, raw, &context, &flags, submission);
            if let Ok(accepted) = validate(&raw) {
                let again = validate(&accepted.to_json())
                    .unwrap_or_else(|errors| {
                        panic!(
                            "step {} ({submission:?}): accepted {raw} as {} but rejected that: {errors:?}",
                            step.id,
                            accepted.to_json()
                        )
                    });
                assert_eq!(
                    again.to_json(),
                    accepted.to_json(),
                    "step {} ({submission:?}): normalising is not idempotent",
                    step.id
                );
            }
        }
    }
});
