//! The OpenAPI document is the contract the wizard is built against: it lists
//! exactly the routes the router serves, every status it documents for a
//! route is one a real request provokes (and no request gets a status it does
//! not document), and every body fits the document's schema for that route
//! and status.
//!
//! The requests are tables of [`probe::Case`]s: `working` provokes the
//! successes and client errors, `faults` the answers of a deployment whose
//! dependencies fail.

mod contract;
mod faults;
mod probe;
mod working;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use crate::functions::Function;
use crate::support::spawn_app;
use contract::{Contract, documented};

const HEALTH: &str = "/api/health";
const OPENAPI: &str = "/api/openapi.json";
const STATUS: &str = "/api/onboarding/status";
const FLOW: &str = "/api/onboarding/flow";
const STEP: &str = "/api/onboarding/steps/{step}";
const COMPLETE: &str = "/api/onboarding/complete";
const SESSION: &str = "/api/onboarding/session";
const MERGE: &str = "/api/onboarding/session/merge";
const EVENTS: &str = "/api/onboarding/events";
const FUNNEL: &str = "/api/onboarding/analytics/funnel";
const PREFERENCES: &str = "/api/onboarding/ai/preferences";
const SUGGEST: &str = "/api/onboarding/ai/suggest";
const ACCEPT: &str = "/api/onboarding/ai/suggestions/{id}/accept";
const REJECT: &str = "/api/onboarding/ai/suggestions/{id}/reject";
const POLICY: &str = "/api/onboarding/ai/policy";
const PURGE: &str = "/api/cron/purge";
const DELIVER: &str = "/api/cron/deliver";

/// The cron secret of the apps that run the purge.
const CRON_SECRET: &str = "contract-cron-secret-0123456789";

const ME: &str = "/api/onboarding/me";
const EXPORT: &str = "/api/onboarding/me/export";
const CLERK: &str = "/api/webhooks/clerk";

/// The steps of `config/edge-config.json`, in order.
const STEPS: [&str; 5] = ["profile", "organization", "goals", "team", "preferences"];

async fn fetch_document(address: &str) -> Value {
    let response = reqwest::get(format!("{address}{OPENAPI}")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).expect("the document is JSON")
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_exactly_the_routes_the_router_serves() {
    let app = spawn_app().await;
    let document = fetch_document(&app.address).await;
    let version = document["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");

    let documented_paths: BTreeSet<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        documented_paths,
        function_paths(),
        "one path per function file"
    );

    let client = reqwest::Client::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let documented_methods: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|method| method.to_uppercase())
            .collect();
        let concrete = path
            .replace("{step}", "profile")
            .replace("{id}", &uuid::Uuid::new_v4().to_string());
        let mut served = BTreeSet::new();
        for method in [
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
        ] {
            let response = client
                .request(method.clone(), format!("{}{concrete}", app.address))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unrouted = status == 404 && body["detail"] == "no route matches this path";
            if status != 405 && !unrouted {
                served.insert(method.as_str().to_string());
            }
        }
        assert_eq!(served, documented_methods, "methods of {path}");
    }
}

/// The public path of every function file under `api/`, as Vercel routes
/// it: `[segment]` is a path parameter, and a `vercel.json` rewrite to a
/// function publishes it under the rewrite's source instead.
fn function_paths() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vercel: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("vercel.json")).unwrap()).unwrap();
    let published: BTreeMap<&str, &str> = vercel["rewrites"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rewrite| {
            (
                rewrite["destination"].as_str().unwrap(),
                rewrite["source"].as_str().unwrap(),
            )
        })
        .collect();
    let mut files = Vec::new();
    let mut pending = vec![root.join("api")];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files
        .iter()
        .map(|file| {
            let route = format!(
                "/{}",
                file.strip_prefix(root)
                    .unwrap()
                    .with_extension("")
                    .to_str()
                    .unwrap()
            );
            match published.get(route.as_str()) {
                Some(source) => source.to_string(),
                None => route.replace('[', "{").replace(']', "}"),
            }
        })
        .collect()
}

#[tokio::test]
async fn the_openapi_function_binary_serves_the_document_the_dev_server_serves() {
    let app = spawn_app().await;
    let function = Function::start(env!("CARGO_BIN_EXE_openapi"), &app.db).await;
    assert_eq!(
        fetch_document(&function.address).await,
        fetch_document(&app.address).await
    );
}

#[tokio::test]
async fn every_documented_status_is_answered_and_every_body_fits_its_schema() {
    let document = serde_json::from_str(onboarding::openapi::document_json()).unwrap();
    let contract = Contract::new(document);
    // The phases share this test's one thread, and dropping a test
    // database blocks it until PostgreSQL has dropped it (seconds on a busy
    // disk): the apps are dropped only once every phase is done, so no
    // request of one phase waits out its deadline behind another's cleanup.
    let _apps = tokio::join!(
        working::answers_of_a_working_app(&contract),
        faults::answers_at_the_rate_limit(&contract),
        faults::answers_with_the_database_down(&contract),
        faults::answers_with_the_identity_providers_keys_unavailable(&contract),
        faults::answers_with_a_broken_database(&contract),
        faults::answers_of_the_webhook_at_the_address_limit(&contract),
    );
    let seen = contract.seen.lock().unwrap().clone();
    let documented = documented(&contract.document);
    let never_answered: Vec<_> = documented.difference(&seen).collect();
    assert!(
        never_answered.is_empty(),
        "documented but never answered: {never_answered:#?}"
    );
    assert_eq!(seen, documented);
}
