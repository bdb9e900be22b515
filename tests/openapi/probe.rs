//! Requests as data: a [`Case`] is one request and the status it must be
//! answered with, and a [`Probe`] sends cases to one app, each answer checked
//! against the contract.

use onboarding::auth::{SessionCookies, SessionId};
use reqwest::{Method, RequestBuilder};
use serde_json::Value;

use super::contract::{Answer, Contract};
use crate::support::api::{Api, Auth};
use crate::support::{TEST_SESSION_SECRET, TestApp};

pub const GET: Method = Method::GET;
pub const PUT: Method = Method::PUT;
pub const POST: Method = Method::POST;
pub const DELETE: Method = Method::DELETE;

/// What a request carries after its headers.
#[derive(Clone)]
pub enum Body {
    /// Nothing.
    Empty,
    /// This value, as `application/json`.
    Json(Value),
    /// `(content type, text)`.
    Raw(&'static str, &'static str),
    /// Valid JSON over the default `BODY_LIMIT_BYTES` (64 KiB).
    Oversized,
    /// JSON cut short.
    Malformed,
}

impl Body {
    fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Body::Empty => request,
            Body::Json(value) => request.json(value),
            Body::Raw(content_type, text) => raw(request, content_type, *text),
            Body::Oversized => raw(
                request,
                "application/json",
                format!("{{\"padding\": \"{}\"}}", "x".repeat(100 * 1024)),
            ),
            Body::Malformed => raw(request, "application/json", "{\"answers\": {"),
        }
    }
}

fn raw(request: RequestBuilder, content_type: &str, text: impl Into<String>) -> RequestBuilder {
    request
        .header("content-type", content_type)
        .body(text.into())
}

/// One request, and the status it must be answered with.
pub struct Case<'a> {
    pub status: u16,
    pub method: Method,
    /// The documented path `path` is an instance of.
    pub template: &'static str,
    pub path: String,
    pub caller: &'a Auth,
    /// Sent before the body.
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// Further assertions on the answer.
    pub check: Option<fn(&Answer)>,
}

/// A case with no extra header and no further assertion.
pub fn case<'a>(
    status: u16,
    method: Method,
    template: &'static str,
    path: impl Into<String>,
    caller: &'a Auth,
    body: Body,
) -> Case<'a> {
    Case {
        status,
        method,
        template,
        path: path.into(),
        caller,
        headers: Vec::new(),
        body,
        check: None,
    }
}

impl Case<'_> {
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sends `headers` too, e.g. a webhook's signature.
    pub fn headers(mut self, headers: Vec<(&'static str, String)>) -> Self {
        self.headers.extend(headers);
        self
    }

    pub fn if_match(self, version: &'static str) -> Self {
        self.header("if-match", version)
    }

    pub fn idempotency_key(self, key: &'static str) -> Self {
        self.header("idempotency-key", key)
    }

    /// Asserts `check` of the answer too.
    pub fn then(mut self, check: fn(&Answer)) -> Self {
        self.check = Some(check);
        self
    }
}

/// Requests to one app, each checked against the contract.
pub struct Probe<'a> {
    contract: &'a Contract,
    api: Api,
}

impl<'a> Probe<'a> {
    pub fn new(contract: &'a Contract, app: &TestApp) -> Self {
        Self {
            contract,
            api: Api::at(&app.address),
        }
    }

    /// Sends `case` and checks the answer against the contract, whatever
    /// its status.
    pub async fn send(&self, case: &Case<'_>) -> Answer {
        let mut request = self
            .api
            .request(case.method.clone(), &case.path, case.caller);
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let response = case.body.apply(request).send().await.unwrap();
        self.contract
            .check(&case.method, case.template, response)
            .await
    }

    /// As [`Self::send`], asserting the case's status and check.
    pub async fn run(&self, case: Case<'_>) -> Answer {
        let answer = self.send(&case).await;
        assert_eq!(
            answer.status, case.status,
            "{} {}: {}",
            case.method, case.path, answer.body
        );
        if let Some(check) = case.check {
            check(&answer);
        }
        answer
    }

    /// Runs `cases` one after another, in order.
    pub async fn run_all<'c>(&self, cases: impl IntoIterator<Item = Case<'c>>) {
        for case in cases {
            self.run(case).await;
        }
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn step_path(step: &str) -> String {
    format!("/api/onboarding/steps/{step}")
}

pub fn decision_path(id: &str, verb: &str) -> String {
    format!("/api/onboarding/ai/suggestions/{id}/{verb}")
}

/// A session signed with the tests' secret, valid for every test app.
pub fn minted_session() -> String {
    SessionCookies::new(TEST_SESSION_SECRET)
        .unwrap()
        .issue(&SessionId::generate())
}
