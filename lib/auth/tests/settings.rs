//! Environment parsing and presets.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::{HS_SECRET, ISSUER, settings};
use crate::auth::{AuthSettings, Provider, env_var_docs};
use crate::settings::Profile;

fn err_var(vars: &[(&str, &str)]) -> &'static str {
    settings(vars).expect_err("should be rejected").variable()
}

#[test]
fn hs256_is_the_default_provider_with_documented_defaults() {
    let s = settings(&[("AUTH_JWT_SECRET", HS_SECRET)]).expect("valid");
    assert_eq!(s.provider(), Provider::Hs256);
    assert_eq!(s.algorithms(), &[Algorithm::HS256]);
    assert_eq!(s.clock_skew(), Duration::from_secs(30));
    assert!(s.audiences().is_empty());
    assert_eq!(s.jwks_url(), None);
}

#[test]
fn clerk_derives_the_jwks_url_from_the_issuer() {
    let s = settings(&[
        ("AUTH_PROVIDER", "clerk"),
        ("AUTH_ISSUER", "https://clerk.example.test/"),
    ])
    .expect("valid");
    assert_eq!(
        s.jwks_url(),
        Some("https://clerk.example.test/.well-known/jwks.json")
    );
    assert_eq!(s.algorithms(), &[Algorithm::RS256]);
}

#[test]
fn supabase_defaults_to_the_authenticated_audience_and_matching_algorithms() {
    let s = settings(&[
        ("AUTH_PROVIDER", "supabase"),
        ("AUTH_JWT_SECRET", HS_SECRET),
    ])
    .expect("valid");
    assert_eq!(s.audiences(), &["authenticated".to_owned()]);
    assert_eq!(s.algorithms(), &[Algorithm::HS256]);
    let s = settings(&[
        ("AUTH_PROVIDER", "supabase"),
        (
            "AUTH_JWKS_URL",
            "https://ref.supabase.co/auth/v1/.well-known/jwks.json",
        ),
    ])
    .expect("valid");
    assert_eq!(s.algorithms(), &[Algorithm::ES256, Algorithm::RS256]);
}

#[test]
fn config_errors_name_the_variable_at_fault() {
    assert_eq!(err_var(&[("AUTH_PROVIDER", "okta")]), "AUTH_PROVIDER");
    assert_eq!(err_var(&[]), "AUTH_JWT_SECRET");
    assert_eq!(
        err_var(&[("AUTH_JWT_SECRET", "too-short")]),
        "AUTH_JWT_SECRET"
    );
    assert_eq!(
        err_var(&[("AUTH_JWT_SECRET", HS_SECRET), ("SESSION_SECRET", "short")]),
        "SESSION_SECRET"
    );
    assert_eq!(
        err_var(&[
            ("AUTH_JWT_SECRET", HS_SECRET),
            ("AUTH_CLOCK_SKEW_SECONDS", "301")
        ]),
        "AUTH_CLOCK_SKEW_SECONDS"
    );
    assert_eq!(
        err_var(&[("AUTH_JWT_SECRET", HS_SECRET), ("AUTH_ALGORITHMS", "none")]),
        "AUTH_ALGORITHMS"
    );
    // An asymmetric algorithm without a JWKS to take keys from.
    assert_eq!(
        err_var(&[
            ("AUTH_JWT_SECRET", HS_SECRET),
            ("AUTH_ALGORITHMS", "HS256,RS256")
        ]),
        "AUTH_ALGORITHMS"
    );
    assert_eq!(err_var(&[("AUTH_PROVIDER", "clerk")]), "AUTH_ISSUER");
    assert_eq!(
        err_var(&[("AUTH_PROVIDER", "oidc"), ("AUTH_ISSUER", ISSUER)]),
        "AUTH_JWKS_URL"
    );
    assert_eq!(
        err_var(&[
            ("AUTH_PROVIDER", "oidc"),
            ("AUTH_ISSUER", ISSUER),
            ("AUTH_JWKS_URL", "https://issuer.example.test/jwks"),
        ]),
        "AUTH_AUDIENCE"
    );
    assert_eq!(
        err_var(&[
            ("AUTH_PROVIDER", "oidc"),
            ("AUTH_ISSUER", ISSUER),
            ("AUTH_AUDIENCE", "api"),
            ("AUTH_JWKS_URL", "http://issuer.example.test/jwks"),
        ]),
        "AUTH_JWKS_URL"
    );
    assert_eq!(
        err_var(&[
            ("AUTH_JWT_SECRET", HS_SECRET),
            ("AUTH_USER_ID_CLAIM", "a..b")
        ]),
        "AUTH_USER_ID_CLAIM"
    );
    assert_eq!(
        err_var(&[
            ("AUTH_JWT_SECRET", HS_SECRET),
            ("AUTH_COOKIE_NAME", "bad name;")
        ]),
        "AUTH_COOKIE_NAME"
    );
}

#[test]
fn config_errors_never_contain_secret_values() {
    let err = settings(&[("AUTH_JWT_SECRET", "short-secret-value")]).expect_err("short");
    assert!(!err.to_string().contains("short-secret-value"));
}

#[test]
fn every_variable_read_is_documented_and_every_documented_variable_is_read() {
    let asked = RefCell::new(BTreeSet::new());
    // A full configuration, so that every branch that reads a variable runs.
    let _ = AuthSettings::from_lookup(
        &|name: &str| {
            asked.borrow_mut().insert(name.to_owned());
            None
        },
        Profile::Deployed,
    );
    let _ = AuthSettings::from_lookup(
        &|name: &str| {
            asked.borrow_mut().insert(name.to_owned());
            match name {
                "AUTH_PROVIDER" => Some("oidc".to_owned()),
                "AUTH_ISSUER" => Some(ISSUER.to_owned()),
                "AUTH_JWKS_URL" => Some("https://issuer.example.test/jwks".to_owned()),
                "AUTH_AUDIENCE" => Some("api".to_owned()),
                "SESSION_SECRET" => Some(super::SESSION_SECRET.to_owned()),
                _ => None,
            }
        },
        Profile::Deployed,
    );
    let documented: BTreeSet<String> = env_var_docs()
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .collect();
    assert_eq!(asked.into_inner(), documented);
    assert!(
        env_var_docs()
            .iter()
            .all(|(_, meaning)| !meaning.is_empty())
    );
}

#[test]
fn the_readme_documents_every_environment_variable() {
    let readme = include_str!("../README.md");
    for (name, _) in env_var_docs() {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} missing from README"
        );
    }
}
