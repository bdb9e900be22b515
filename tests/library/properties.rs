//! Property tests: no input panics the validator; accepted answers round-trip
//! through the stored shape and re-validate unchanged.

use crate::library::corpus as support;

use onboarding::wizard::transform::{from_stored, to_stored};
use onboarding::wizard::validation::{Submission, normalize_text, validate_step};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN/inf become null
        any::<String>().prop_map(Value::String),
        proptest::sample::select(support::candidates()),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    any::<String>(),
                    proptest::sample::select(vec![
                        "fullName",
                        "jobRole",
                        "name",
                        "slug",
                        "size",
                        "industry",
                        "website",
                        "useCases",
                        "primaryGoal",
                        "invites",
                        "productUpdates",
                        "weeklyDigest",
                        "timezone",
                        "locale",
                    ])
                    .prop_map(str::to_owned),
                ],
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn check_round_trip(step: &str, raw: &Value) -> Result<(), TestCaseError> {
    let flow = support::flow();
    let (answers, flags) = support::all_visible();
    for submission in [Submission::Complete, Submission::Draft] {
        let result = validate_step(&flow, step, raw, &answers, &flags, submission);
        if let Ok(parsed) = result {
            let stored = to_stored(&parsed);
            let back = from_stored(&flow, step, &stored);
            prop_assert_eq!(back.as_ref().ok(), Some(&parsed));
            // Idempotent normalization: the canonical form validates to itself.
            let again = validate_step(&flow, step, &stored, &answers, &flags, submission);
            prop_assert_eq!(again.as_ref().ok(), Some(&parsed));
            prop_assert_eq!(to_stored(&parsed), stored);
        }
    }
    Ok(())
}

const STEPS: [&str; 7] = [
    "profile",
    "organization",
    "goals",
    "team",
    "preferences",
    "review",
    "nope",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn no_json_value_makes_validation_panic(raw in arbitrary_json()) {
        for step in STEPS {
            check_round_trip(step, &raw)?;
        }
    }

    #[test]
    fn no_string_in_any_field_makes_validation_panic(
        s in any::<String>(),
        field in proptest::sample::select(vec![
            ("profile", "fullName"), ("profile", "jobRole"), ("organization", "name"),
            ("organization", "slug"), ("organization", "website"), ("goals", "primaryGoal"),
            ("preferences", "timezone"), ("preferences", "locale"),
        ]),
    ) {
        let mut raw = support::valid_answer(field.0);
        if let Some(map) = raw.as_object_mut() {
            map.insert(field.1.to_owned(), Value::String(s));
        }
        check_round_trip(field.0, &raw)?;
    }

    #[test]
    fn mutated_valid_answers_round_trip_when_accepted(
        step in proptest::sample::select(STEPS[..5].to_vec()),
        field_index in 0usize..6,
        value in proptest::sample::select(support::candidates()),
    ) {
        let flow = support::flow();
        let mut raw = support::valid_answer(step);
        let fields = flow.step(step).map(|s| s.fields.clone()).unwrap_or_default();
        if let (Some(field), Some(map)) = (fields.get(field_index % fields.len().max(1)), raw.as_object_mut()) {
            map.insert(field.name.clone(), value);
        }
        check_round_trip(step, &raw)?;
    }

    #[test]
    fn string_normalization_is_idempotent(s in any::<String>()) {
        let once = normalize_text(&s);
        prop_assert_eq!(normalize_text(&once), once);
    }

    #[test]
    fn unicode_heavy_strings_normalize_idempotently(
        s in "[\\s\\p{M}\\p{L}\\u{FEFF}\\u{85}\\u{2028}]{0,20}"
    ) {
        let once = normalize_text(&s);
        prop_assert_eq!(normalize_text(&once), once);
    }
}

#[test]
fn the_canonical_form_of_every_valid_default_answer_is_a_fixed_point() {
    for step in &STEPS[..6] {
        check_round_trip(step, &support::valid_answer(step)).expect("round trip");
    }
}
