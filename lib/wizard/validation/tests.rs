//! The validator's behaviour end to end, through the entry points: a flow
//! with every field kind and the shipped default flow.

use serde_json::{Map, Value, json};

use super::{ErrorCode, MAX_NODES, StepAnswers, Submission, ValidationErrors, validate_step};
use crate::wizard::flow::{AnswerMap, Flow, default_flow};

fn no_flags(_: &str) -> bool {
    false
}

fn team_on(key: &str) -> bool {
    key == "teamInvites"
}

/// A flow with every field kind, for the kinds the default flow lacks.
fn kitchen_sink() -> Flow {
    Flow::from_value(json!({
            "id": "sink", "version": 1,
            "steps": [{ "id": "all", "title": "All", "fields": [
                { "name": "short", "label": "Short", "kind": { "type": "text", "minLength": 2, "maxLength": 5 } },
                { "name": "long", "label": "Long", "kind": { "type": "text", "maxLength": 1000 } },
                { "name": "email", "label": "Email", "kind": { "type": "email" } },
                { "name": "count", "label": "Count", "kind": { "type": "number", "minimum": 1, "maximum": 10, "integer": true } },
                { "name": "ratio", "label": "Ratio", "kind": { "type": "number", "minimum": 0, "maximum": 1 } },
                { "name": "hasSite", "label": "Has site", "kind": { "type": "boolean" } },
                { "name": "site", "label": "Site", "required": true, "kind": { "type": "url" },
                  "condition": { "field": "hasSite", "equals": true } },
                { "name": "beta", "label": "Beta", "kind": { "type": "boolean" },
                  "condition": { "flag": "beta" } }
            ]}]
        }))
        .expect("valid flow")
}

/// `raw` submitted to `step` by a caller with no other answers and no flag on.
fn without_context(
    flow: &Flow,
    step: &str,
    raw: &Value,
    submission: Submission,
) -> Result<StepAnswers, ValidationErrors> {
    validate_step(flow, step, raw, &AnswerMap::new(), &no_flags, submission)
}

fn sink(raw: Value) -> Result<StepAnswers, ValidationErrors> {
    without_context(&kitchen_sink(), "all", &raw, Submission::Draft)
}

fn codes(result: Result<StepAnswers, ValidationErrors>) -> Vec<(String, &'static str)> {
    match result {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors()
            .iter()
            .map(|e| (e.pointer.clone(), e.code.as_str()))
            .collect(),
    }
}

fn step(step: &str, raw: Value) -> Result<StepAnswers, ValidationErrors> {
    let flow = default_flow().expect("parses");
    let mut answers = AnswerMap::new();
    answers.insert("organization".into(), json!({ "size": "2-10" }));
    validate_step(&flow, step, &raw, &answers, &team_on, Submission::Complete)
}

fn one(step_id: &str, raw: Value) -> (String, &'static str) {
    let c = codes(step(step_id, raw));
    assert_eq!(c.len(), 1, "{c:?}");
    c.into_iter().next().unwrap_or_default()
}

#[test]
fn accepts_a_complete_profile_and_normalizes_it() {
    let ok = step(
        "profile",
        json!({ "fullName": "  Zoe\u{0308} Ada ", "jobRole": "founder" }),
    )
    .expect("valid");
    assert_eq!(ok.text("fullName"), Some("Zo\u{eb} Ada"));
    assert_eq!(
        ok.to_json(),
        json!({ "fullName": "Zo\u{eb} Ada", "jobRole": "founder" })
    );
}

#[test]
fn rejects_a_missing_required_field() {
    assert_eq!(one("profile", json!({})), ("/fullName".into(), "required"));
}

#[test]
fn treats_null_and_blank_strings_as_unanswered() {
    assert_eq!(
        one("profile", json!({ "fullName": null })),
        ("/fullName".into(), "required")
    );
    assert_eq!(
        one("profile", json!({ "fullName": " \t " })),
        ("/fullName".into(), "required")
    );
    let ok = step("profile", json!({ "fullName": "Ada", "jobRole": "" })).expect("valid");
    assert_eq!(ok.get("jobRole"), None);
}

#[test]
fn rejects_text_that_is_too_short() {
    assert_eq!(
        codes(sink(json!({ "short": "a" }))),
        [("/short".into(), "too_short")]
    );
}

#[test]
fn rejects_text_that_is_too_long_counting_unicode_scalars() {
    let e = step("profile", json!({ "fullName": "x".repeat(101) })).expect_err("long");
    assert_eq!(e.errors()[0].code, ErrorCode::TooLong);
    assert_eq!(e.errors()[0].limit, Some(json!(100)));
    // 100 four-byte characters are 100 long, not 400.
    assert!(step("profile", json!({ "fullName": "😀".repeat(100) })).is_ok());
}

#[test]
fn counts_length_after_nfc_composition() {
    // 5 letters with combining accents are 10 scalars raw, 5 after NFC.
    assert!(sink(json!({ "short": "e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}" })).is_ok());
}

#[test]
fn rejects_a_value_of_the_wrong_type() {
    assert_eq!(
        one("profile", json!({ "fullName": 7 })),
        ("/fullName".into(), "invalid_type")
    );
    assert_eq!(
        one("goals", json!({ "useCases": "analytics" })),
        ("/useCases".into(), "invalid_type")
    );
    assert_eq!(
        one(
            "preferences",
            json!({ "productUpdates": "yes", "weeklyDigest": true,
                                        "timezone": "UTC", "locale": "en-US" })
        ),
        ("/productUpdates".into(), "invalid_type")
    );
}

#[test]
fn rejects_an_email_without_a_domain() {
    assert_eq!(
        codes(sink(json!({ "email": "ada@" }))),
        [("/email".into(), "invalid_email")]
    );
}

#[test]
fn rejects_an_email_longer_than_254_characters() {
    let long = format!("{}@example.com", "a".repeat(250));
    assert_eq!(
        codes(sink(json!({ "email": long }))),
        [("/email".into(), "too_long")]
    );
}

#[test]
fn rejects_a_url_that_is_not_http_or_https() {
    let raw = json!({ "name": "Acme", "slug": "acme", "size": "1", "industry": "saas",
                          "website": "ftp://acme.test" });
    assert_eq!(one("organization", raw), ("/website".into(), "invalid_url"));
}

#[test]
fn rejects_a_url_longer_than_2048_characters() {
    let raw = json!({ "name": "Acme", "slug": "acme", "size": "1", "industry": "saas",
                          "website": format!("https://acme.test/{}", "a".repeat(2048)) });
    assert_eq!(one("organization", raw), ("/website".into(), "too_long"));
}

#[test]
fn rejects_an_option_that_is_not_offered() {
    let e = step("profile", json!({ "fullName": "Ada", "jobRole": "ceo" })).expect_err("bad");
    assert_eq!(e.errors()[0].code, ErrorCode::NotInEnum);
    assert!(e.errors()[0].limit.as_ref().is_some_and(Value::is_array));
}

#[test]
fn rejects_too_few_and_too_many_choices() {
    assert_eq!(
        one("goals", json!({ "useCases": [] })),
        ("/useCases".into(), "too_few_items")
    );
    let six = json!({ "useCases": ["analytics", "automation", "collaboration", "reporting",
                                       "integrations", "other"] });
    assert_eq!(one("goals", six), ("/useCases".into(), "too_many_items"));
}

#[test]
fn rejects_a_choice_listed_twice_and_sorts_choices_in_option_order() {
    assert_eq!(
        one("goals", json!({ "useCases": ["reporting", "reporting"] })),
        ("/useCases/1".into(), "duplicate_item")
    );
    let ok = step("goals", json!({ "useCases": ["reporting", "analytics"] })).expect("valid");
    assert_eq!(
        ok.list("useCases"),
        Some(&["analytics".to_owned(), "reporting".to_owned()][..])
    );
}

#[test]
fn rejects_invites_that_differ_only_in_case() {
    assert_eq!(
        one(
            "team",
            json!({ "invites": ["ada@example.com", "ADA@example.com"] })
        ),
        ("/invites/1".into(), "duplicate_item")
    );
}

#[test]
fn rejects_more_than_twenty_invites() {
    let many: Vec<String> = (0..21).map(|i| format!("u{i}@example.com")).collect();
    assert_eq!(
        one("team", json!({ "invites": many })),
        ("/invites".into(), "too_many_items")
    );
}

#[test]
fn reports_the_position_of_a_bad_invite() {
    assert_eq!(
        one(
            "team",
            json!({ "invites": ["ok@example.com", "not-an-email"] })
        ),
        ("/invites/1".into(), "invalid_email")
    );
}

#[test]
fn rejects_a_number_out_of_range_or_not_whole() {
    assert_eq!(
        codes(sink(json!({ "count": 11 }))),
        [("/count".into(), "out_of_range")]
    );
    assert_eq!(
        codes(sink(json!({ "ratio": -0.5 }))),
        [("/ratio".into(), "out_of_range")]
    );
    assert_eq!(
        codes(sink(json!({ "count": 2.5 }))),
        [("/count".into(), "not_integer")]
    );
    assert_eq!(
        codes(sink(json!({ "count": "3" }))),
        [("/count".into(), "invalid_type")]
    );
    let ok = sink(json!({ "count": 3.0, "ratio": 0.25 })).expect("valid");
    assert_eq!(ok.to_json(), json!({ "count": 3, "ratio": 0.25 }));
}

#[test]
fn rejects_an_uppercase_slug() {
    let raw = json!({ "name": "Acme", "slug": "Acme", "size": "1", "industry": "saas" });
    assert_eq!(one("organization", raw), ("/slug".into(), "invalid_slug"));
}

#[test]
fn rejects_a_slug_longer_than_63_characters() {
    let raw = json!({ "name": "Acme", "slug": "a".repeat(64), "size": "1", "industry": "saas" });
    assert_eq!(one("organization", raw), ("/slug".into(), "too_long"));
}

#[test]
fn rejects_a_time_zone_that_is_not_iana() {
    let raw = json!({ "productUpdates": true, "weeklyDigest": true,
                          "timezone": "Central European Time", "locale": "de-DE" });
    assert_eq!(
        one("preferences", raw),
        ("/timezone".into(), "invalid_timezone")
    );
}

#[test]
fn rejects_control_characters_in_single_line_text() {
    for bad in [
        "Ada\u{0}Lovelace",
        "Ada\tLovelace",
        "Ada\nLovelace",
        "Ada\u{9B}",
    ] {
        assert_eq!(
            one("profile", json!({ "fullName": bad })),
            ("/fullName".into(), "control_character"),
            "{bad:?}"
        );
    }
}

#[test]
fn allows_newlines_but_not_carriage_returns_in_long_text() {
    assert!(sink(json!({ "long": "line one\nline two" })).is_ok());
    assert_eq!(
        codes(sink(json!({ "long": "a\r\nb" }))),
        [("/long".into(), "control_character")]
    );
    // primaryGoal (maxLength 500) is multi-line.
    assert!(
        step(
            "goals",
            json!({ "useCases": ["other"], "primaryGoal": "a\nb" })
        )
        .is_ok()
    );
}

#[test]
fn rejects_an_unknown_field() {
    assert_eq!(
        one("profile", json!({ "fullName": "Ada", "is_admin": true })),
        ("/is_admin".into(), "unknown_field")
    );
    // Pointer tokens are escaped per RFC 6901.
    assert_eq!(
        one("profile", json!({ "fullName": "Ada", "a/b~c": 1 })),
        ("/a~1b~0c".into(), "unknown_field")
    );
}

#[test]
fn rejects_answers_that_are_not_an_object() {
    assert_eq!(
        one("profile", json!(["Ada"])),
        (String::new(), "not_an_object")
    );
}

#[test]
fn reports_all_errors_at_once() {
    let raw = json!({ "name": "", "slug": "-bad-", "size": "huge", "industry": 3,
                          "website": "nope", "extra": 1 });
    let c = codes(step("organization", raw));
    assert_eq!(
        c,
        [
            ("/extra".into(), "unknown_field"),
            ("/name".into(), "required"),
            ("/slug".into(), "invalid_slug"),
            ("/size".into(), "not_in_enum"),
            ("/industry".into(), "invalid_type"),
            ("/website".into(), "invalid_url"),
        ]
    );
}

#[test]
fn a_draft_may_omit_required_fields_but_not_break_rules() {
    let flow = default_flow().expect("parses");
    let draft = |raw: Value| without_context(&flow, "organization", &raw, Submission::Draft);
    assert!(draft(json!({ "name": "Acme" })).is_ok());
    assert!(draft(json!({})).is_ok());
    assert_eq!(
        codes(draft(json!({ "name": "x".repeat(101) }))),
        [("/name".into(), "too_long")]
    );
    assert_eq!(
        codes(draft(json!({ "name": 1 }))),
        [("/name".into(), "invalid_type")]
    );
    assert_eq!(
        codes(draft(json!({ "nope": 1 }))),
        [("/nope".into(), "unknown_field")]
    );
}

#[test]
fn a_field_shown_by_a_condition_is_required_and_hidden_it_must_be_absent() {
    let flow = kitchen_sink();
    let complete = |raw: Value| without_context(&flow, "all", &raw, Submission::Complete);
    assert_eq!(
        codes(complete(json!({ "hasSite": true }))),
        [("/site".into(), "required")]
    );
    assert!(complete(json!({ "hasSite": true, "site": "https://a.io" })).is_ok());
    assert!(complete(json!({ "hasSite": false })).is_ok());
    assert_eq!(
        codes(complete(
            json!({ "hasSite": false, "site": "https://a.io" })
        )),
        [("/site".into(), "hidden_field")]
    );
    // A hidden field sent as null is the same as absent.
    assert!(complete(json!({ "hasSite": false, "site": null })).is_ok());
}

#[test]
fn a_field_behind_a_flag_is_hidden_while_the_flag_is_off() {
    let flow = kitchen_sink();
    let raw = json!({ "beta": true });
    let off = without_context(&flow, "all", &raw, Submission::Draft);
    assert_eq!(codes(off), [("/beta".into(), "hidden_field")]);
    assert!(
        validate_step(
            &flow,
            "all",
            &raw,
            &AnswerMap::new(),
            &|k| k == "beta",
            Submission::Draft
        )
        .is_ok()
    );
}

#[test]
fn a_field_depending_on_a_broken_field_gets_no_extra_error() {
    let c = codes(sink(json!({ "hasSite": "yes", "site": "https://a.io" })));
    assert_eq!(c, [("/hasSite".into(), "invalid_type")]);
}

#[test]
fn rejects_a_submission_to_a_hidden_or_unknown_step() {
    let flow = default_flow().expect("parses");
    let mut answers = AnswerMap::new();
    answers.insert("organization".into(), json!({ "size": "1" }));
    let submit = |step: &str| {
        validate_step(
            &flow,
            step,
            &json!({}),
            &answers,
            &team_on,
            Submission::Complete,
        )
    };
    let e = submit("team").expect_err("hidden");
    assert_eq!(e.errors()[0].code, ErrorCode::HiddenStep);
    let e = submit("billing").expect_err("unknown");
    assert_eq!(e.errors()[0].code, ErrorCode::UnknownStep);
}

#[test]
fn rejects_deep_nesting_without_recursing() {
    // Built by hand: serde_json's parser would stop at 128 levels, but a
    // Value can be constructed deeper than any stack allows recursion for.
    let mut deep = json!(1);
    for _ in 0..100_000 {
        deep = Value::Array(vec![deep]);
    }
    // Not json!: it would serialize `deep` recursively.
    let raw = Value::Object(Map::from_iter([("fullName".to_owned(), deep)]));
    let flow = default_flow().expect("parses");
    let e = without_context(&flow, "profile", &raw, Submission::Complete).expect_err("too deep");
    assert_eq!(e.errors()[0].code, ErrorCode::TooDeep);
    assert_eq!(e.errors()[0].pointer, "");
    // Dropping such a value recursively would overflow the stack, so take it apart iteratively.
    let mut stack = vec![raw];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

#[test]
fn rejects_too_many_values_before_doing_any_work() {
    let raw = json!({ "invites": vec![json!(0); MAX_NODES + 1] });
    assert_eq!(one("team", raw), (String::new(), "too_large"));
}

#[test]
fn errors_serialize_as_a_list_of_pointer_code_message_limit() {
    let e = step("profile", json!({ "fullName": "x".repeat(101) })).expect_err("long");
    let v = serde_json::to_value(&e).expect("serializes");
    assert_eq!(v[0]["pointer"], "/fullName");
    assert_eq!(v[0]["code"], "too_long");
    assert_eq!(v[0]["limit"], 100);
    assert!(v[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    let as_error: &dyn std::error::Error = &e;
    assert!(as_error.to_string().contains("too_long"));
}
