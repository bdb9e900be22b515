//! Flow-definition parsing (`Flow::parse`) and the Edge Config document around
//! it: any text either parses or is an error, never a panic; a parsed flow
//! answers its own queries and JSON schemas without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onboarding::wizard::flow::{AnswerMap, EdgeConfig, Flow};
use onboarding::wizard::status::{RedirectPaths, compute};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(flow) = Flow::parse(text) {
        let answers = AnswerMap::new();
        let flags = |_: &str| true;
        // What `GET /status` computes from a flow: visible steps, progress, redirect.
        let _ = compute(&flow, &flags, false, None, &answers, &RedirectPaths::default());
        for step in flow.steps() {
            let _ = flow.step_json_schema(&step.id);
            let _ = flow.step_draft_json_schema(&step.id);
            let _ = flow.next_step(&step.id, &answers, &flags);
        }
    }
    let _ = EdgeConfig::parse(text);
});
