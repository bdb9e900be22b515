//! The OpenAPI document is the contract the wizard is built against: it lists
//! exactly the routes the router serves, every status it documents for a
//! route is one a real request provokes (and no request gets a status it does
//! not document), and every body fits the document's schema for that route
//! and status.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use onboarding::ai::ProviderKind;
use onboarding::auth::{SessionCookies, SessionId};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::ai::server::{self, FakeProvider};
use crate::functions::Function;
use crate::support::api::{Api, Auth, valid_answer};
use crate::support::{
    TEST_SESSION_SECRET, TestApp, TestDb, free_port, spawn_app, spawn_app_with, token,
};

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

/// The steps of `config/edge-config.json`, in order.
const STEPS: [&str; 5] = ["profile", "organization", "goals", "team", "preferences"];

async fn fetch_document(address: &str) -> Value {
    let response = reqwest::get(format!("{address}{OPENAPI}")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).expect("the document is JSON")
}

/// `(METHOD, path template, status)`.
type Exchange = (String, String, u16);

/// Every `(method, path, status)` the document lists.
fn documented(document: &Value) -> BTreeSet<Exchange> {
    let mut exchanges = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for status in responses.keys() {
                exchanges.insert((
                    method.to_uppercase(),
                    path.clone(),
                    status.parse().expect("statuses are numbers, not ranges"),
                ));
            }
        }
    }
    exchanges
}

/// The document, and what real requests answered.
struct Contract {
    document: Value,
    validators: Mutex<BTreeMap<String, Arc<jsonschema::Validator>>>,
    seen: Mutex<BTreeSet<Exchange>>,
}

/// One checked answer.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Contract {
    fn new(document: Value) -> Self {
        Self {
            document,
            validators: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    /// The target of a `$ref` into the document, or `value` itself.
    fn resolve<'v>(&'v self, value: &'v Value) -> &'v Value {
        match value["$ref"].as_str() {
            Some(reference) => self
                .document
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{reference} points nowhere")),
            None => value,
        }
    }

    /// A validator for `schema`, whose `$ref`s point into the document's
    /// `components`: they are carried along in the validated root.
    fn validator(&self, schema: &Value) -> Arc<jsonschema::Validator> {
        let key = schema.to_string();
        let mut validators = self.validators.lock().unwrap();
        validators
            .entry(key)
            .or_insert_with(|| {
                let mut root = schema.as_object().expect("a schema object").clone();
                root.insert("components".into(), self.document["components"].clone());
                let validator = jsonschema::draft202012::options()
                    .should_validate_formats(true)
                    .build(&Value::Object(root))
                    .unwrap_or_else(|error| panic!("{schema} does not compile: {error}"));
                Arc::new(validator)
            })
            .clone()
    }

    /// Checks an answer against what the document says about `method
    /// template` and its status, and records the exchange.
    async fn check(&self, method: &Method, template: &str, response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let context = format!("{method} {template} answered {status} {text}");
        let documented = &self.document["paths"][template][method.as_str().to_lowercase()]["responses"]
            [status.to_string()];
        assert!(documented.is_object(), "undocumented: {context}");
        for (name, header) in documented["headers"].as_object().into_iter().flatten() {
            if self.resolve(header)["required"] == true {
                assert!(headers.contains_key(name.as_str()), "no {name}: {context}");
            }
        }
        let content_type = headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .unwrap_or_default()
            .trim()
            .to_string();
        let schema = &documented["content"][&content_type]["schema"];
        assert!(
            schema.is_object(),
            "content type `{content_type}` is not documented: {context}"
        );
        let body: Value = serde_json::from_str(&text).expect("a JSON body");
        let validator = self.validator(schema);
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|error| format!("{} at `{}`", error, error.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}\n{context}");
        self.seen.lock().unwrap().insert((
            method.as_str().to_string(),
            template.to_string(),
            status,
        ));
        Answer {
            status,
            headers,
            body,
        }
    }
}

/// Requests to one app, each checked against the contract.
struct Probe<'a> {
    contract: &'a Contract,
    api: Api,
}

impl<'a> Probe<'a> {
    fn new(contract: &'a Contract, app: &TestApp) -> Self {
        Self {
            contract,
            api: Api::at(&app.address),
        }
    }

    /// Sends `method path` (an instance of `template`) and checks the answer.
    async fn answer(
        &self,
        method: Method,
        template: &str,
        path: &str,
        auth: &Auth,
        request: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Answer {
        let response = request(self.api.request(method.clone(), path, auth))
            .send()
            .await
            .unwrap();
        self.contract.check(&method, template, response).await
    }

    /// As [`Self::answer`], expecting `status`.
    async fn expect(
        &self,
        status: u16,
        method: Method,
        template: &str,
        path: &str,
        auth: &Auth,
        request: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Answer {
        let answer = self
            .answer(method.clone(), template, path, auth, request)
            .await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        answer
    }
}

fn as_is(request: RequestBuilder) -> RequestBuilder {
    request
}

fn json_body(body: Value) -> impl FnOnce(RequestBuilder) -> RequestBuilder {
    move |request| request.json(&body)
}

fn raw_body(
    content_type: &'static str,
    body: impl Into<String>,
) -> impl FnOnce(RequestBuilder) -> RequestBuilder {
    let body = body.into();
    move |request| request.header("content-type", content_type).body(body)
}

/// Valid JSON over the default `BODY_LIMIT_BYTES` (64 KiB).
fn oversized() -> impl FnOnce(RequestBuilder) -> RequestBuilder {
    raw_body(
        "application/json",
        format!("{{\"padding\": \"{}\"}}", "x".repeat(100 * 1024)),
    )
}

fn malformed() -> impl FnOnce(RequestBuilder) -> RequestBuilder {
    raw_body("application/json", "{\"answers\": {")
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn step_path(step: &str) -> String {
    format!("/api/onboarding/steps/{step}")
}

fn decision_path(id: &str, verb: &str) -> String {
    format!("/api/onboarding/ai/suggestions/{id}/{verb}")
}

/// A session signed with the tests' secret, valid for every test app.
fn minted_session() -> String {
    SessionCookies::new(TEST_SESSION_SECRET)
        .unwrap()
        .issue(&SessionId::generate())
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
    tokio::join!(
        answers_of_a_working_app(&contract),
        answers_at_the_rate_limit(&contract),
        answers_with_the_database_down(&contract),
        answers_with_the_identity_providers_keys_unavailable(&contract),
        answers_with_a_broken_database(&contract),
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

/// Everything that needs no fault: successes and client errors.
async fn answers_of_a_working_app(contract: &Contract) {
    let provider = FakeProvider::start(
        ProviderKind::OpenAi,
        vec![
            server::structured(
                ProviderKind::OpenAi,
                json!({ "primaryGoal": "See our numbers in real time" }),
            ),
            server::structured(
                ProviderKind::OpenAi,
                json!({ "primaryGoal": "Ship the weekly report in minutes" }),
            ),
            // Then the provider fails for good: no suggestion, not an error.
            server::error(ProviderKind::OpenAi, 500, &[]),
        ],
    )
    .await;
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            ("AI_PROVIDER", "openai".into()),
            ("AI_BASE_URL", provider.base_url.clone()),
            ("AI_API_KEY", "test-key".into()),
            ("AI_MODEL", "test-model".into()),
            ("AI_MAX_RETRIES", "0".into()),
            // Many writes from one visitor; the limits have a scenario of their own.
            ("RATE_LIMIT_WRITES_PER_MINUTE", "10000".into()),
            ("RATE_LIMIT_AI_PER_MINUTE", "10000".into()),
        ],
    )
    .await;
    let probe = Probe::new(contract, &app);
    let nobody = Auth::none();
    let forged = Auth::token("not.a.token");
    use Method as M;

    // A fresh pool's first connection can outlast health's 2 s budget on a
    // loaded machine (a 503, also documented); it is 200 once the database answers.
    let mut health = 0;
    for _ in 0..10 {
        health = probe
            .answer(M::GET, HEALTH, HEALTH, &nobody, as_is)
            .await
            .status;
        if health == 200 {
            break;
        }
    }
    assert_eq!(health, 200);
    probe
        .expect(200, M::GET, OPENAPI, OPENAPI, &nobody, as_is)
        .await;

    // Sessions.
    let started = probe
        .expect(201, M::POST, SESSION, SESSION, &nobody, as_is)
        .await;
    let session = started.body["session"].as_str().unwrap().to_string();
    let visitor = Auth::session(&session);
    probe
        .expect(200, M::POST, SESSION, SESSION, &visitor, as_is)
        .await;
    probe
        .expect(
            401,
            M::POST,
            SESSION,
            SESSION,
            &Auth::session("forged"),
            as_is,
        )
        .await;
    let member = unique("member");
    let signed_in = Auth::token(&token(&member, None));
    probe
        .expect(409, M::POST, SESSION, SESSION, &signed_in, as_is)
        .await;

    // Reads.
    probe
        .expect(200, M::GET, STATUS, STATUS, &visitor, as_is)
        .await;
    probe
        .expect(401, M::GET, STATUS, STATUS, &forged, as_is)
        .await;
    probe.expect(200, M::GET, FLOW, FLOW, &visitor, as_is).await;
    probe.expect(401, M::GET, FLOW, FLOW, &forged, as_is).await;
    let read = probe
        .expect(200, M::GET, STEP, &step_path("profile"), &visitor, as_is)
        .await;
    assert_eq!(read.headers["etag"], "\"0\"");
    probe
        .expect(404, M::GET, STEP, &step_path("nope"), &visitor, as_is)
        .await;
    probe
        .expect(401, M::GET, STEP, &step_path("profile"), &forged, as_is)
        .await;
    // A segment or query axum cannot decode is answered in the problem shape too.
    probe
        .expect(400, M::GET, STEP, &step_path("%FF"), &visitor, as_is)
        .await;
    probe
        .expect(
            400,
            M::GET,
            STEP,
            &format!("{}?step=a&step=b", step_path("profile")),
            &visitor,
            as_is,
        )
        .await;

    // Saving a step.
    let profile = json!({ "answers": valid_answer("profile"), "complete": false });
    let saved = probe
        .expect(
            200,
            M::PUT,
            STEP,
            &step_path("profile"),
            &visitor,
            json_body(profile.clone()),
        )
        .await;
    assert_eq!(saved.headers["etag"], "\"1\"");
    probe
        .expect(
            428,
            M::PUT,
            STEP,
            &step_path("profile"),
            &visitor,
            json_body(profile.clone()),
        )
        .await;
    probe
        .expect(
            412,
            M::PUT,
            STEP,
            &step_path("profile"),
            &visitor,
            |request| request.header("if-match", "\"7\"").json(&profile),
        )
        .await;
    probe
        .expect(
            400,
            M::PUT,
            STEP,
            &step_path("profile"),
            &visitor,
            malformed(),
        )
        .await;
    probe
        .expect(
            415,
            M::PUT,
            STEP,
            &step_path("profile"),
            &visitor,
            raw_body("text/plain", "fullName=Ada"),
        )
        .await;
    probe
        .expect(
            413,
            M::PUT,
            STEP,
            &step_path("profile"),
            &visitor,
            oversized(),
        )
        .await;
    probe
        .expect(
            404,
            M::PUT,
            STEP,
            &step_path("nope"),
            &visitor,
            json_body(profile.clone()),
        )
        .await;
    let invalid = probe
        .expect(
            422,
            M::PUT,
            STEP,
            &step_path("organization"),
            &visitor,
            json_body(json!({
                "answers": { "name": "", "slug": "Not A Slug" }, "complete": true
            })),
        )
        .await;
    assert!(invalid.body["errors"].as_array().unwrap().len() >= 2);
    probe
        .expect(
            401,
            M::PUT,
            STEP,
            &step_path("profile"),
            &nobody,
            json_body(profile.clone()),
        )
        .await;

    // Events.
    let events = json!({ "events": [{ "type": "step_viewed", "step": "profile" }] });
    probe
        .expect(
            202,
            M::POST,
            EVENTS,
            EVENTS,
            &visitor,
            json_body(events.clone()),
        )
        .await;
    probe
        .expect(400, M::POST, EVENTS, EVENTS, &visitor, malformed())
        .await;
    probe
        .expect(
            401,
            M::POST,
            EVENTS,
            EVENTS,
            &nobody,
            json_body(events.clone()),
        )
        .await;
    let too_many = json!({ "events": vec![json!({ "type": "step_viewed" }); 101] });
    probe
        .expect(413, M::POST, EVENTS, EVENTS, &visitor, json_body(too_many))
        .await;
    probe
        .expect(
            415,
            M::POST,
            EVENTS,
            EVENTS,
            &visitor,
            raw_body("text/plain", "step_viewed"),
        )
        .await;
    probe
        .expect(
            422,
            M::POST,
            EVENTS,
            EVENTS,
            &visitor,
            json_body(json!({ "events": [{ "type": "teleported" }] })),
        )
        .await;

    // AI preferences and suggestions.
    probe
        .expect(200, M::GET, PREFERENCES, PREFERENCES, &visitor, as_is)
        .await;
    probe
        .expect(401, M::GET, PREFERENCES, PREFERENCES, &nobody, as_is)
        .await;
    let goals = json!({ "answers": { "useCases": ["analytics"], "primaryGoal": "numbers faster i guess" } });
    probe
        .expect(
            200,
            M::PUT,
            STEP,
            &step_path("goals"),
            &visitor,
            json_body(goals),
        )
        .await;
    let primary_goal = json!({ "step": "goals", "field": "primaryGoal" });
    probe
        .expect(
            403,
            M::POST,
            SUGGEST,
            SUGGEST,
            &visitor,
            json_body(primary_goal.clone()),
        )
        .await;
    let opt_in = json!({ "mode": "suggest", "consentVersion": "2026-11" });
    probe
        .expect(
            200,
            M::PUT,
            PREFERENCES,
            PREFERENCES,
            &visitor,
            json_body(opt_in.clone()),
        )
        .await;
    probe
        .expect(400, M::PUT, PREFERENCES, PREFERENCES, &visitor, malformed())
        .await;
    probe
        .expect(
            401,
            M::PUT,
            PREFERENCES,
            PREFERENCES,
            &nobody,
            json_body(opt_in.clone()),
        )
        .await;
    probe
        .expect(413, M::PUT, PREFERENCES, PREFERENCES, &visitor, oversized())
        .await;
    probe
        .expect(
            415,
            M::PUT,
            PREFERENCES,
            PREFERENCES,
            &visitor,
            raw_body("text/plain", "suggest"),
        )
        .await;
    probe
        .expect(
            422,
            M::PUT,
            PREFERENCES,
            PREFERENCES,
            &visitor,
            json_body(json!({ "mode": "maybe" })),
        )
        .await;

    let first = probe
        .expect(
            201,
            M::POST,
            SUGGEST,
            SUGGEST,
            &visitor,
            json_body(primary_goal.clone()),
        )
        .await;
    let accepted_id = first.body["suggestion"]["id"].as_str().unwrap().to_string();
    let second = probe
        .expect(
            201,
            M::POST,
            SUGGEST,
            SUGGEST,
            &visitor,
            json_body(primary_goal.clone()),
        )
        .await;
    let rejected_id = second.body["suggestion"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let none = probe
        .expect(
            200,
            M::POST,
            SUGGEST,
            SUGGEST,
            &visitor,
            json_body(primary_goal.clone()),
        )
        .await;
    assert_eq!(none.body["suggestion"], Value::Null);
    probe
        .expect(
            422,
            M::POST,
            SUGGEST,
            SUGGEST,
            &visitor,
            json_body(json!({ "step": "profile", "field": "fullName" })),
        )
        .await;
    probe
        .expect(400, M::POST, SUGGEST, SUGGEST, &visitor, malformed())
        .await;
    probe
        .expect(
            415,
            M::POST,
            SUGGEST,
            SUGGEST,
            &visitor,
            raw_body("text/plain", "goals"),
        )
        .await;
    probe
        .expect(413, M::POST, SUGGEST, SUGGEST, &visitor, oversized())
        .await;
    probe
        .expect(
            401,
            M::POST,
            SUGGEST,
            SUGGEST,
            &nobody,
            json_body(primary_goal.clone()),
        )
        .await;

    // Deciding on suggestions.
    let accept = decision_path(&accepted_id, "accept");
    let if_match =
        |version: &'static str| move |request: RequestBuilder| request.header("if-match", version);
    probe
        .expect(428, M::POST, ACCEPT, &accept, &visitor, as_is)
        .await;
    probe
        .expect(412, M::POST, ACCEPT, &accept, &visitor, if_match("\"7\""))
        .await;
    probe
        .expect(400, M::POST, ACCEPT, &accept, &visitor, if_match("W/\"1\""))
        .await;
    probe
        .expect(
            422,
            M::POST,
            ACCEPT,
            &accept,
            &visitor,
            raw_body("application/json", "[1]"),
        )
        .await;
    probe
        .expect(413, M::POST, ACCEPT, &accept, &visitor, oversized())
        .await;
    probe
        .expect(401, M::POST, ACCEPT, &accept, &nobody, as_is)
        .await;
    let decided = probe
        .expect(200, M::POST, ACCEPT, &accept, &visitor, if_match("\"1\""))
        .await;
    assert_eq!(decided.headers["etag"], "\"2\"");
    let unknown = uuid::Uuid::new_v4().to_string();
    probe
        .expect(
            404,
            M::POST,
            ACCEPT,
            &decision_path(&unknown, "accept"),
            &visitor,
            if_match("\"2\""),
        )
        .await;
    probe
        .expect(
            404,
            M::POST,
            ACCEPT,
            &decision_path("not-a-uuid", "accept"),
            &visitor,
            as_is,
        )
        .await;
    let reject = decision_path(&rejected_id, "reject");
    probe
        .expect(200, M::POST, REJECT, &reject, &visitor, as_is)
        .await;
    probe
        .expect(
            409,
            M::POST,
            ACCEPT,
            &decision_path(&rejected_id, "accept"),
            &visitor,
            if_match("\"2\""),
        )
        .await;
    probe
        .expect(
            409,
            M::POST,
            REJECT,
            &decision_path(&accepted_id, "reject"),
            &visitor,
            as_is,
        )
        .await;
    probe
        .expect(
            404,
            M::POST,
            REJECT,
            &decision_path(&unknown, "reject"),
            &visitor,
            as_is,
        )
        .await;
    probe
        .expect(400, M::POST, REJECT, &reject, &visitor, malformed())
        .await;
    probe
        .expect(
            422,
            M::POST,
            REJECT,
            &reject,
            &visitor,
            raw_body("application/json", "[1]"),
        )
        .await;
    probe
        .expect(413, M::POST, REJECT, &reject, &visitor, oversized())
        .await;
    probe
        .expect(401, M::POST, REJECT, &reject, &nobody, as_is)
        .await;
    probe
        .expect(
            400,
            M::POST,
            ACCEPT,
            &decision_path("%FF", "accept"),
            &visitor,
            as_is,
        )
        .await;
    probe
        .expect(
            400,
            M::POST,
            REJECT,
            &format!("{reject}?id=a&id=b"),
            &visitor,
            as_is,
        )
        .await;

    // Signing in: the visitor's drafts move to the member.
    let member_with_session = signed_in.clone().with_session(&session);
    let key = |value: &'static str| {
        move |request: RequestBuilder| request.header("idempotency-key", value).json(&json!({}))
    };
    let merged = probe
        .expect(
            200,
            M::POST,
            MERGE,
            MERGE,
            &member_with_session,
            key("merge-1"),
        )
        .await;
    assert!(
        merged.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    probe
        .expect(
            422,
            M::POST,
            MERGE,
            MERGE,
            &member_with_session,
            |request| {
                request
                    .header("idempotency-key", "merge-1")
                    .json(&json!({ "again": true }))
            },
        )
        .await;
    probe
        .expect(400, M::POST, MERGE, MERGE, &signed_in, as_is)
        .await;
    probe
        .expect(413, M::POST, MERGE, MERGE, &signed_in, oversized())
        .await;
    probe
        .expect(401, M::POST, MERGE, MERGE, &nobody, as_is)
        .await;

    // Completing.
    let newcomer = Auth::token(&token(&unique("newcomer"), None));
    probe
        .expect(422, M::POST, COMPLETE, COMPLETE, &newcomer, as_is)
        .await;
    probe
        .expect(400, M::POST, COMPLETE, COMPLETE, &newcomer, |request| {
            request.header("idempotency-key", "two words")
        })
        .await;
    probe
        .expect(413, M::POST, COMPLETE, COMPLETE, &newcomer, oversized())
        .await;
    probe
        .expect(401, M::POST, COMPLETE, COMPLETE, &visitor, as_is)
        .await;
    let finisher = Auth::token(&token(&unique("finisher"), None));
    for step in STEPS {
        let mut answers = valid_answer(step);
        if step == "organization" {
            answers["slug"] = json!(unique("contract").replace('_', "-"));
        }
        probe
            .expect(
                200,
                M::PUT,
                STEP,
                &step_path(step),
                &finisher,
                json_body(json!({ "answers": answers, "complete": true })),
            )
            .await;
    }
    probe
        .expect(200, M::POST, COMPLETE, COMPLETE, &finisher, as_is)
        .await;
    probe
        .expect(
            409,
            M::PUT,
            STEP,
            &step_path("profile"),
            &finisher,
            |request| request.header("if-match", "*").json(&profile),
        )
        .await;

    // The funnel, for an organization's admin.
    let boss = unique("boss");
    let admin = crate::support::connect(&app.db.admin_url()).await;
    admin
        .execute(
            "insert into onboarding.organizations (id, name, slug, created_by) values ('org_contract', 'Contract Co', 'contract-co', $1)",
            &[&boss],
        )
        .await
        .unwrap();
    admin
        .execute(
            "insert into onboarding.memberships (organization_id, user_id, role) values ('org_contract', $1, 'owner')",
            &[&boss],
        )
        .await
        .unwrap();
    let boss = Auth::token(&token(&boss, Some("org_contract")));
    probe
        .expect(200, M::GET, FUNNEL, FUNNEL, &boss, as_is)
        .await;
    probe
        .expect(
            400,
            M::GET,
            FUNNEL,
            &format!("{FUNNEL}?from=yesterday"),
            &boss,
            as_is,
        )
        .await;
    probe
        .expect(403, M::GET, FUNNEL, FUNNEL, &visitor, as_is)
        .await;
    probe
        .expect(401, M::GET, FUNNEL, FUNNEL, &forged, as_is)
        .await;
}

/// One write per minute: a caller's second write of any kind is a 429.
async fn answers_at_the_rate_limit(contract: &Contract) {
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            ("RATE_LIMIT_WRITES_PER_MINUTE", "1".into()),
            ("RATE_LIMIT_PREFIX", unique("contract-limits")),
        ],
    )
    .await;
    let probe = Probe::new(contract, &app);
    use Method as M;
    // Starting a session is not counted: the visitor has no identity yet.
    let started = probe
        .expect(201, M::POST, SESSION, SESSION, &Auth::none(), as_is)
        .await;
    let visitor = Auth::session(started.body["session"].as_str().unwrap());
    // The visitor's one write; this deployment has no AI provider.
    let primary_goal = json!({ "step": "goals", "field": "primaryGoal" });
    probe
        .expect(
            409,
            M::POST,
            SUGGEST,
            SUGGEST,
            &visitor,
            json_body(primary_goal.clone()),
        )
        .await;

    let profile = json!({ "answers": valid_answer("profile") });
    let id = uuid::Uuid::new_v4().to_string();
    probe
        .expect(
            429,
            M::PUT,
            STEP,
            &step_path("profile"),
            &visitor,
            json_body(profile),
        )
        .await;
    probe
        .expect(429, M::POST, SESSION, SESSION, &visitor, as_is)
        .await;
    probe
        .expect(
            429,
            M::POST,
            EVENTS,
            EVENTS,
            &visitor,
            json_body(json!({ "events": [] })),
        )
        .await;
    probe
        .expect(
            429,
            M::PUT,
            PREFERENCES,
            PREFERENCES,
            &visitor,
            json_body(json!({ "mode": "off" })),
        )
        .await;
    probe
        .expect(
            429,
            M::POST,
            SUGGEST,
            SUGGEST,
            &visitor,
            json_body(primary_goal),
        )
        .await;
    probe
        .expect(
            429,
            M::POST,
            ACCEPT,
            &decision_path(&id, "accept"),
            &visitor,
            as_is,
        )
        .await;
    probe
        .expect(
            429,
            M::POST,
            REJECT,
            &decision_path(&id, "reject"),
            &visitor,
            as_is,
        )
        .await;

    let user = Auth::token(&token(&unique("limited"), None));
    probe
        .expect(422, M::POST, COMPLETE, COMPLETE, &user, as_is)
        .await;
    probe
        .expect(429, M::POST, COMPLETE, COMPLETE, &user, as_is)
        .await;
    probe.expect(429, M::POST, MERGE, MERGE, &user, as_is).await;
}

/// PostgreSQL unreachable: 503 wherever the database is needed.
async fn answers_with_the_database_down(contract: &Contract) {
    let closed = free_port();
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[(
            "DATABASE_URL",
            format!("postgres://onboarding_app@127.0.0.1:{closed}/x?sslmode=disable"),
        )],
    )
    .await;
    let probe = Probe::new(contract, &app);
    probe
        .expect(503, Method::GET, HEALTH, HEALTH, &Auth::none(), as_is)
        .await;
    probe
        .expect(503, Method::POST, SESSION, SESSION, &Auth::none(), as_is)
        .await;
    every_database_route_answers(&probe, 503).await;
}

/// The schema is gone: every statement fails, which is a 500 with nothing
/// of the cause in the body.
async fn answers_with_a_broken_database(contract: &Contract) {
    let app = spawn_app().await;
    crate::support::connect(&app.db.admin_url())
        .await
        .batch_execute("drop schema onboarding cascade")
        .await
        .unwrap();
    let probe = Probe::new(contract, &app);
    let answer = probe
        .expect(500, Method::POST, SESSION, SESSION, &Auth::none(), as_is)
        .await;
    assert!(
        !answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("onboarding")
    );
    every_database_route_answers(&probe, 500).await;
}

/// Sends a request the database must serve to every route that uses it.
async fn every_database_route_answers(probe: &Probe<'_>, status: u16) {
    use Method as M;
    let user = unique("stranded");
    let user = Auth::token(&token(&user, Some("org_stranded"))).with_session(&minted_session());
    let id = uuid::Uuid::new_v4().to_string();
    let profile = json!({ "answers": valid_answer("profile") });
    probe
        .expect(status, M::GET, STATUS, STATUS, &user, as_is)
        .await;
    probe.expect(status, M::GET, FLOW, FLOW, &user, as_is).await;
    probe
        .expect(status, M::GET, STEP, &step_path("profile"), &user, as_is)
        .await;
    probe
        .expect(
            status,
            M::PUT,
            STEP,
            &step_path("profile"),
            &user,
            json_body(profile),
        )
        .await;
    probe
        .expect(status, M::POST, COMPLETE, COMPLETE, &user, as_is)
        .await;
    probe
        .expect(status, M::POST, MERGE, MERGE, &user, as_is)
        .await;
    probe
        .expect(status, M::GET, FUNNEL, FUNNEL, &user, as_is)
        .await;
    probe
        .expect(status, M::GET, PREFERENCES, PREFERENCES, &user, as_is)
        .await;
    probe
        .expect(
            status,
            M::PUT,
            PREFERENCES,
            PREFERENCES,
            &user,
            json_body(json!({ "mode": "off" })),
        )
        .await;
    probe
        .expect(
            status,
            M::POST,
            SUGGEST,
            SUGGEST,
            &user,
            json_body(json!({ "step": "goals", "field": "primaryGoal" })),
        )
        .await;
    probe
        .expect(
            status,
            M::POST,
            ACCEPT,
            &decision_path(&id, "accept"),
            &user,
            as_is,
        )
        .await;
    probe
        .expect(
            status,
            M::POST,
            REJECT,
            &decision_path(&id, "reject"),
            &user,
            as_is,
        )
        .await;
}

/// The identity provider's key set cannot be fetched: a token cannot be
/// verified, which is the provider's outage (503), not the caller's fault.
async fn answers_with_the_identity_providers_keys_unavailable(contract: &Contract) {
    let closed = free_port();
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            ("AUTH_PROVIDER", "oidc".into()),
            (
                "AUTH_JWKS_URL",
                format!("http://127.0.0.1:{closed}/jwks.json"),
            ),
            ("AUTH_ISSUER", "https://issuer.test".into()),
            ("AUTH_AUDIENCE", "onboarding".into()),
        ],
    )
    .await;
    let probe = Probe::new(contract, &app);
    let unverifiable = Auth::token(&rs256_token_for_unknown_key());
    let events = json!({ "events": [{ "type": "flow_started" }] });
    probe
        .expect(
            503,
            Method::POST,
            EVENTS,
            EVENTS,
            &unverifiable,
            json_body(events),
        )
        .await;
}

/// A well-formed RS256 token whose key must be fetched to check it.
fn rs256_token_for_unknown_key() -> String {
    use base64::Engine as _;
    let encode =
        |value: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let now = chrono::Utc::now().timestamp();
    format!(
        "{}.{}.{}",
        encode(json!({ "alg": "RS256", "typ": "JWT", "kid": "contract-key" })),
        encode(json!({
            "sub": "user_keys_down", "iss": "https://issuer.test", "aud": "onboarding",
            "iat": now, "exp": now + 3600
        })),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"not a signature"),
    )
}
