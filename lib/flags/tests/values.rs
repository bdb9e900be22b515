//! Flag values: parsing `bool | number | string | null` and evaluation.

use serde_json::json;

use super::items_with_flags;
use crate::flags::{FlagValue, Percent, rollout_bucket};
use crate::wizard::flow::{AnswerMap, EdgeConfig};

fn config(flags: serde_json::Value) -> EdgeConfig {
    EdgeConfig::parse(&items_with_flags(flags).to_string()).expect("valid config")
}

#[test]
fn flags_parse_from_booleans_numbers_strings_and_null() {
    let config = config(json!({
        "on": true,
        "off": false,
        "half": 50,
        "fraction": 12.5,
        "switchedOn": "on",
        "switchedOff": "off",
        "color": "blue",
        "cleared": null,
    }));
    let value = |key| config.flag_value(key).cloned();
    assert_eq!(value("on"), Some(FlagValue::Bool(true)));
    assert_eq!(value("off"), Some(FlagValue::Bool(false)));
    assert_eq!(
        value("half"),
        Some(FlagValue::Percent(Percent::new(50.0).unwrap()))
    );
    assert_eq!(value("fraction").unwrap().to_string(), "12.5%");
    assert_eq!(value("switchedOn"), Some(FlagValue::Text("on".into())));
    assert_eq!(value("color").unwrap().variant(), Some("blue"));
    assert_eq!(value("switchedOn").unwrap().variant(), None);
    assert_eq!(value("cleared"), Some(FlagValue::Null));
    assert_eq!(value("missing"), None);
    // Round trip to the same JSON shape.
    assert_eq!(
        serde_json::to_value(value("fraction")).unwrap(),
        json!(12.5)
    );
    assert_eq!(serde_json::to_value(value("cleared")).unwrap(), json!(null));
}

#[test]
fn arrays_objects_and_out_of_range_numbers_are_rejected_naming_each_flag() {
    let items = items_with_flags(json!({
        "list": [true],
        "object": { "on": true },
        "tooMuch": 100.5,
        "negative": -1,
        "fine": true,
    }));
    let error = EdgeConfig::parse(&items.to_string()).unwrap_err();
    let paths: Vec<&str> = error.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "flags.list",
            "flags.negative",
            "flags.object",
            "flags.tooMuch"
        ]
    );
}

#[test]
fn booleans_on_off_strings_and_null_evaluate_as_documented() {
    let config = config(json!({
        "yes": true, "no": false, "switchedOn": "on", "switchedOff": "off",
        "color": "blue", "cleared": null,
    }));
    for subject in ["user-1", "session-abc", ""] {
        assert!(config.is_enabled("yes", subject));
        assert!(!config.is_enabled("no", subject));
        assert!(config.is_enabled("switchedOn", subject));
        assert!(!config.is_enabled("switchedOff", subject));
        assert!(
            !config.is_enabled("color", subject),
            "a variant is not a boolean"
        );
        assert!(!config.is_enabled("cleared", subject));
        assert!(!config.is_enabled("missing", subject));
    }
}

#[test]
fn the_rollout_bucket_is_fnv1a_of_key_colon_subject_modulo_ten_thousand() {
    // Reference values, computed independently of this crate with the
    // documented algorithm; the Next.js app must produce the same.
    assert_eq!(rollout_bucket("teamInvites", "user-1"), 3689);
    assert_eq!(rollout_bucket("newCheckout", "3f2a9c"), 7433);
    assert_eq!(rollout_bucket("aiSuggestions", "ünïcode"), 1874);
}

#[test]
fn a_percentage_rollout_is_stable_for_a_subject() {
    let config = config(json!({ "newCheckout": 37 }));
    for i in 0..1000 {
        let subject = format!("user-{i}");
        let first = config.is_enabled("newCheckout", &subject);
        for _ in 0..3 {
            assert_eq!(config.is_enabled("newCheckout", &subject), first);
        }
        // A larger rollout keeps everyone the smaller one had.
        if first {
            assert!(config_with_percent(80.0).is_enabled("newCheckout", &subject));
        }
    }
}

fn config_with_percent(percent: f64) -> EdgeConfig {
    config(json!({ "newCheckout": percent }))
}

#[test]
fn a_percentage_rollout_reaches_roughly_its_share_of_ten_thousand_subjects() {
    let subjects: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    for percent in [0u32, 1, 10, 25, 50, 90, 100] {
        let config = config_with_percent(f64::from(percent));
        let on = subjects
            .iter()
            .filter(|s| config.is_enabled("newCheckout", s))
            .count();
        let expected = percent as usize * 100;
        // Deterministic (fixed ids, fixed hash); the bounds only document the intent.
        assert!(on.abs_diff(expected) <= 300, "{percent}%: {on} of 10000");
        if percent == 0 || percent == 100 {
            assert_eq!(on, expected, "{percent}% is exact");
        }
    }
}

#[test]
fn different_flags_roll_out_to_different_subjects() {
    let config = config(json!({ "a": 50, "b": 50 }));
    let differ = (0..1000)
        .map(|i| format!("user-{i}"))
        .filter(|s| config.is_enabled("a", s) != config.is_enabled("b", s))
        .count();
    assert!(differ > 300, "{differ}");
}

#[test]
fn the_per_subject_closure_drives_the_flow() {
    let mut answers = AnswerMap::new();
    answers.insert("organization".into(), json!({ "size": "11-50" }));
    let has_team = |config: &EdgeConfig| {
        let flags = config.flags_for("user-1");
        config
            .flow()
            .visible_steps(&answers, &flags)
            .iter()
            .any(|s| s.id == "team")
    };
    assert!(has_team(&config(json!({ "teamInvites": 100 }))));
    assert!(!has_team(&config(json!({ "teamInvites": 0 }))));
    assert!(!has_team(&config(json!({ "teamInvites": null }))));
    assert!(has_team(&config(json!({ "teamInvites": "on" }))));
}
