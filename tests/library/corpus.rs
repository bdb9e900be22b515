//! Shared corpus for the integration tests: candidate values that probe every
//! rule of every field kind, valid and invalid, raw (untrimmed, unnormalized).

#![allow(dead_code)]

use onboarding::wizard::flow::{AnswerMap, Flow, default_flow};
use serde_json::{Value, json};

pub fn flow() -> Flow {
    default_flow().expect("edge-config.json parses")
}

/// Flags and answers under which every step of the default flow is visible.
pub fn all_visible() -> (AnswerMap, fn(&str) -> bool) {
    let mut answers = AnswerMap::new();
    answers.insert("organization".into(), json!({ "size": "2-10" }));
    fn flags(key: &str) -> bool {
        key == "teamInvites"
    }
    (answers, flags)
}

/// A complete, valid answer per step of the default flow.
pub fn valid_answer(step: &str) -> Value {
    match step {
        "profile" => json!({ "fullName": "Ada Lovelace", "jobRole": "founder" }),
        "organization" => json!({ "name": "Acme", "slug": "acme", "size": "2-10",
                                  "industry": "saas", "website": "https://acme.example" }),
        "goals" => json!({ "useCases": ["analytics"], "primaryGoal": "Ship faster" }),
        "team" => json!({ "invites": ["grace@example.com"] }),
        "preferences" => json!({ "productUpdates": true, "weeklyDigest": false,
                                 "timezone": "Europe/Berlin", "locale": "de-DE" }),
        _ => json!({}),
    }
}

fn strings() -> Vec<String> {
    let mut s: Vec<String> = [
        "",
        " ",
        "\t\n",
        "Ada",
        " Ada ",
        "A",
        "\u{FEFF}Ada\u{3000}",
        "Ada\u{0}",
        "Ada\tB",
        "a\nb",
        "a\r\nb",
        "\u{85}Ada",
        "Ada\u{2028}",
        "A\u{2028}B",
        "Ada\u{7F}",
        "Ada\u{9F}",
        "e\u{301}",
        "Zoe\u{308}",
        "\u{958}",
        "null",
        "true",
        "1",
        // enum options, near misses
        "founder",
        "FOUNDER",
        " founder ",
        "founder\u{0}",
        "ceo",
        "1",
        "2-10",
        "1000+",
        "saas",
        "other",
        "analytics",
        "reporting",
        "en-US",
        "en-us",
        "de-DE",
        // e-mail addresses
        "ada@example.com",
        "ADA@Example.COM",
        " ada@example.com ",
        "ada@",
        "@example.com",
        "a@b",
        "a@1.2.3.4",
        "a@-b.com",
        "a@b-.com",
        "a b@c.de",
        "ada@exa_mple.com",
        "\u{e4}da@example.com",
        "ada@example..com",
        "!#$%&'*+/=?^_`{|}~-@x.y",
        "a@b@c",
        // URLs
        "https://example.com",
        "http://example.com/",
        "HTTPS://Example.COM/a?b#c",
        "https://a.io:65535",
        "https://a.io:65536",
        "https://a.io:00080",
        "ftp://example.com",
        "https://localhost",
        "https://1.2.3.4",
        "https://user:pw@example.com",
        "http:example.com",
        "https://example.com/a b",
        "https://example.com/\u{e9}",
        "https://example.com.",
        " https://example.com ",
        "javascript:alert(1)",
        "https://exa_mple.com",
        // slugs
        "acme",
        "a",
        "-a",
        "a-",
        "Acme",
        "a--b",
        "ac me",
        "acme_corp",
        // time zones
        "UTC",
        "Europe/Berlin",
        "europe/berlin",
        "Mars/Base",
        " Europe/Berlin ",
        "America/Argentina/Buenos_Aires",
        "Etc/GMT+5",
        "US/Eastern",
        "Factory",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for n in [62, 63, 64, 99, 100, 101, 499, 500, 501] {
        s.push("x".repeat(n));
        s.push("\u{1F600}".repeat(n));
        s.push("e\u{301}".repeat(n));
    }
    s.push(format!("{}@example.com", "a".repeat(242))); // 254
    s.push(format!("{}@example.com", "a".repeat(243))); // 255
    s.push(format!("a@{}.com", "b".repeat(63)));
    s.push(format!("a@{}.com", "b".repeat(64)));
    s.push(format!("https://a.io/{}", "p".repeat(2035))); // 2048
    s.push(format!("https://a.io/{}", "p".repeat(2036))); // 2049
    s.push(format!("{}\n{}", "x".repeat(250), "y".repeat(249)));
    s
}

/// Candidate values for any field.
pub fn candidates() -> Vec<Value> {
    let mut v: Vec<Value> = strings().into_iter().map(Value::String).collect();
    v.extend([
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(1.5),
        json!(-1),
        json!({}),
        json!({ "a": 1 }),
        json!([]),
        json!([1]),
        json!([null]),
        json!(["analytics"]),
        json!([" analytics "]),
        json!(["Analytics"]),
        json!(["analytics", "analytics"]),
        json!([
            "analytics",
            "automation",
            "collaboration",
            "reporting",
            "integrations"
        ]),
        json!([
            "analytics",
            "automation",
            "collaboration",
            "reporting",
            "integrations",
            "other"
        ]),
        json!(["analytics", "nope"]),
        json!(["ada@example.com"]),
        json!([" ada@example.com "]),
        json!(["ada@example.com", "ada@example.com"]),
        json!(["ada@example.com", "ADA@example.com"]),
        json!(["ada@example.com", "not-an-email"]),
        json!(["ada@example.com", ""]),
        json!([["nested"]]),
    ]);
    let twenty: Vec<String> = (0..20).map(|i| format!("u{i}@example.com")).collect();
    let twenty_one: Vec<String> = (0..21).map(|i| format!("u{i}@example.com")).collect();
    v.push(json!(twenty));
    v.push(json!(twenty_one));
    v
}
