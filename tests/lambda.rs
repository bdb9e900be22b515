//! The router on AWS Lambda (`--features lambda`): API Gateway HTTP API events
//! (payload format 2.0), in the JSON AWS sends, go through `lambda_http`'s
//! event conversion and the adapter `bin/lambda.rs` runs, against the real
//! PostgreSQL and Redis; the answers are checked in the JSON AWS receives.
//! Last, the `lambda` binary itself polls a local Lambda Runtime API.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent, Service};
use onboarding::http::lambda::LambdaFunction;
use onboarding::{AppState, http, openapi, routes};
use serde_json::{Value, json};

use crate::support::api::valid_answer;
use crate::support::{TestDb, token};

const WIZARD_ORIGIN: &str = "https://wizard.example.com";
const CLIENT_IP: &str = "198.51.100.7";

/// Every route with the dev server's middleware, as `bin/lambda.rs` mounts it.
struct Lambda {
    function: LambdaFunction,
    db: TestDb,
}

impl Lambda {
    async fn start() -> Self {
        let db = TestDb::migrated().await;
        let settings = db.settings_with(&[("CORS_ALLOWED_ORIGINS", WIZARD_ORIGIN.to_string())]);
        let state = AppState::build(settings).unwrap();
        let function =
            LambdaFunction::new(http::app(state, routes::all().merge(openapi::router())));
        Self { function, db }
    }

    /// One invocation as `lambda_http::run` makes it: the event JSON becomes
    /// a request, and the response becomes the JSON returned to API Gateway.
    async fn invoke(&self, event: Event) -> Invocation {
        let payload: LambdaRequest =
            serde_json::from_value(event.0).expect("lambda_http reads the event");
        let mut adapter = Adapter::from(self.function.clone());
        let response = adapter
            .call(LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap();
        Invocation(serde_json::to_value(response).unwrap())
    }
}

/// An API Gateway HTTP API event on the `$default` stage.
struct Event(Value);

impl Event {
    fn new(method: &str, raw_path: &str) -> Self {
        Self(json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": "",
            "headers": {
                "accept": "application/json",
                "host": "abc123.execute-api.eu-west-1.amazonaws.com",
                "user-agent": "onboarding-tests",
                "x-amzn-trace-id": "Root=1-67890abc-0123456789abcdef01234567",
                "x-forwarded-for": CLIENT_IP,
                "x-forwarded-port": "443",
                "x-forwarded-proto": "https"
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
                "domainPrefix": "abc123",
                "http": {
                    "method": method,
                    "path": raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": CLIENT_IP,
                    "userAgent": "onboarding-tests"
                },
                "requestId": "Ab3dEfGhIjKlMnO=",
                "routeKey": "$default",
                "stage": "$default",
                "time": "28/Nov/2026:10:00:00 +0000",
                "timeEpoch": 1_795_860_000_000_u64
            },
            "isBase64Encoded": false
        }))
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.0["headers"][name] = value.into();
        self
    }

    fn query(mut self, raw: &str) -> Self {
        self.0["rawQueryString"] = raw.into();
        self
    }

    /// API Gateway hands cookies over apart from the headers.
    fn cookie(mut self, cookie: &str) -> Self {
        let cookies = self.0["cookies"].as_array().cloned().unwrap_or_default();
        self.0["cookies"] = Value::Array([cookies, vec![cookie.into()]].concat());
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    fn json_body(mut self, body: &Value) -> Self {
        self.0["body"] = body.to_string().into();
        self.header("content-type", "application/json")
    }

    /// How API Gateway passes a body it does not treat as text.
    fn base64_body(mut self, bytes: &[u8], content_type: &str) -> Self {
        self.0["body"] = BASE64.encode(bytes).into();
        self.0["isBase64Encoded"] = true.into();
        self.header("content-type", content_type)
    }

    fn stage(mut self, stage: &str) -> Self {
        self.0["requestContext"]["stage"] = stage.into();
        self
    }
}

/// The response payload the function returns to API Gateway.
#[derive(Debug)]
struct Invocation(Value);

impl Invocation {
    fn status(&self) -> u64 {
        self.0["statusCode"].as_u64().expect("a status code")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.0["headers"][name].as_str()
    }

    fn cookies(&self) -> Vec<&str> {
        self.0["cookies"]
            .as_array()
            .map(|cookies| cookies.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    fn body(&self) -> Value {
        let raw = self.0["body"].as_str().unwrap_or_default();
        let text = if self.0["isBase64Encoded"] == true {
            String::from_utf8(BASE64.decode(raw).unwrap()).unwrap()
        } else {
            raw.to_string()
        };
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body: {text:?}"))
    }

    /// Asserts an RFC 9457 problem with `status`, sent as text.
    fn problem(&self, status: u64) -> Value {
        assert_eq!(self.status(), status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        assert_eq!(self.0["isBase64Encoded"], false, "{self:?}");
        let problem = self.body();
        assert_eq!(problem["status"], status);
        assert_eq!(
            problem["requestId"].as_str(),
            self.header("x-request-id"),
            "{problem}"
        );
        problem
    }
}

#[tokio::test]
async fn an_http_api_event_reaches_the_route_through_the_dev_servers_middleware() {
    let lambda = Lambda::start().await;
    let answer = lambda.invoke(Event::new("GET", "/api/health")).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert!(answer.header("x-request-id").is_some(), "{answer:?}");
    assert_eq!(answer.0["isBase64Encoded"], false);
    assert_eq!(answer.body()["checks"]["database"]["status"], "up");

    // CORS for the configured wizard origin, preflight included.
    let answer = lambda
        .invoke(
            Event::new("OPTIONS", "/api/onboarding/steps/profile")
                .header("origin", WIZARD_ORIGIN)
                .header("access-control-request-method", "PUT")
                .header("access-control-request-headers", "content-type,if-match"),
        )
        .await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(WIZARD_ORIGIN)
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );

    // What no route answers is the same problem+json as from the dev server.
    lambda
        .invoke(Event::new("GET", "/api/nothing-here"))
        .await
        .problem(404);
    lambda
        .invoke(Event::new("DELETE", "/api/health"))
        .await
        .problem(405);
}

#[tokio::test]
async fn a_named_stage_in_the_path_does_not_hide_the_routes() {
    let lambda = Lambda::start().await;
    let answer = lambda
        .invoke(Event::new("GET", "/prod/api/health").stage("prod"))
        .await;
    assert_eq!(answer.status(), 200, "{answer:?}");
}

#[tokio::test]
async fn the_session_cookie_travels_in_the_events_cookies_both_ways() {
    let lambda = Lambda::start().await;
    let started = lambda
        .invoke(Event::new("POST", "/api/onboarding/session"))
        .await;
    assert_eq!(started.status(), 201, "{started:?}");
    // HTTP APIs take Set-Cookie from `cookies`, not from the headers.
    assert!(started.header("set-cookie").is_none(), "{started:?}");
    let set_cookie = started.cookies();
    assert_eq!(set_cookie.len(), 1, "{started:?}");
    assert!(set_cookie[0].starts_with("onboarding_session="));
    assert!(set_cookie[0].contains("Secure"), "{}", set_cookie[0]);
    assert!(set_cookie[0].contains("HttpOnly"), "{}", set_cookie[0]);
    let cookie = set_cookie[0].split(';').next().unwrap().to_string();

    // The browser sends it back; API Gateway lists it in `cookies`.
    let saved = lambda
        .invoke(
            Event::new("PUT", "/api/onboarding/steps/profile")
                .cookie("theme=dark")
                .cookie(&cookie)
                .json_body(&json!({ "answers": valid_answer("profile"), "complete": true })),
        )
        .await;
    assert_eq!(saved.status(), 200, "{saved:?}");
    assert_eq!(saved.header("etag"), Some("\"1\""));

    let status = lambda
        .invoke(Event::new("GET", "/api/onboarding/status").cookie(&cookie))
        .await;
    assert_eq!(status.status(), 200, "{status:?}");
    assert_eq!(status.body()["completedSteps"], json!(["profile"]));
    assert_eq!(status.header("cache-control"), Some("no-store"));

    // After sign-in the merge clears the cookie, again through `cookies`.
    let merged = lambda
        .invoke(
            Event::new("POST", "/api/onboarding/session/merge")
                .bearer(&token("lambda-user", None))
                .cookie(&cookie)
                .json_body(&json!({})),
        )
        .await;
    assert_eq!(merged.status(), 200, "{merged:?}");
    assert!(
        merged
            .cookies()
            .iter()
            .any(|cookie| cookie.starts_with("onboarding_session=") && cookie.contains("Max-Age=0")),
        "{merged:?}"
    );
    assert_eq!(
        merged.body()["merged"][0]["fromSession"],
        json!(["profile"])
    );
}

#[tokio::test]
async fn base64_encoded_bodies_are_decoded_before_the_route_reads_them() {
    let lambda = Lambda::start().await;
    let user = token("lambda-base64", None);
    let body = json!({ "answers": valid_answer("profile"), "complete": true });
    let saved = lambda
        .invoke(
            Event::new("PUT", "/api/onboarding/steps/profile")
                .bearer(&user)
                .base64_body(body.to_string().as_bytes(), "application/json"),
        )
        .await;
    assert_eq!(saved.status(), 200, "{saved:?}");
    assert_eq!(saved.header("etag"), Some("\"1\""));

    // A stale version is refused, in the problem shape, sent as text.
    let stale = lambda
        .invoke(
            Event::new("PUT", "/api/onboarding/steps/profile")
                .bearer(&user)
                .header("if-match", "\"0\"")
                .base64_body(body.to_string().as_bytes(), "application/json"),
        )
        .await;
    stale.problem(412);

    let malformed = lambda
        .invoke(
            Event::new("PUT", "/api/onboarding/steps/profile")
                .bearer(&user)
                .header("if-match", "\"1\"")
                .base64_body(b"{\"answers\": {", "application/json"),
        )
        .await;
    malformed.problem(400);

    let wrong_type = lambda
        .invoke(
            Event::new("PUT", "/api/onboarding/steps/profile")
                .bearer(&user)
                .header("if-match", "\"1\"")
                .base64_body(&[0x89, b'P', b'N', b'G', 0, 0xff], "image/png"),
        )
        .await;
    wrong_type.problem(415);

    let read = lambda
        .invoke(Event::new("GET", "/api/onboarding/steps/profile").bearer(&user))
        .await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.body()["answers"], valid_answer("profile"));
}

#[tokio::test]
async fn the_raw_query_string_reaches_the_route() {
    let lambda = Lambda::start().await;
    let user = token("lambda-query", None);
    let invalid = lambda
        .invoke(
            Event::new("GET", "/api/onboarding/analytics/funnel")
                .bearer(&user)
                .query("from=last-tuesday"),
        )
        .await;
    invalid.problem(400);
    // A well-formed range gets past the query to the permission check.
    let forbidden = lambda
        .invoke(
            Event::new("GET", "/api/onboarding/analytics/funnel")
                .bearer(&user)
                .query("from=2026-11-01T00%3A00%3A00Z&flowVersion=1"),
        )
        .await;
    forbidden.problem(403);
}

#[tokio::test]
async fn events_are_stored_before_the_invocation_returns_since_lambda_then_freezes() {
    let lambda = Lambda::start().await;
    let answer = lambda
        .invoke(
            Event::new("POST", "/api/onboarding/events")
                .bearer(&token("lambda-events", None))
                .json_body(&json!({ "events": [
                    { "type": "flow_started" },
                    { "type": "step_viewed", "step": "profile" }
                ]})),
        )
        .await;
    assert_eq!(answer.status(), 202, "{answer:?}");
    assert_eq!(answer.body()["accepted"], 2);
    // No waiting: a frozen process would not write them later.
    let admin = crate::support::connect(&lambda.db.admin_url()).await;
    let stored: i64 = admin
        .query_one("select count(*) from onboarding.analytics_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn a_client_cannot_pick_the_address_its_writes_are_rate_limited_by() {
    let db = TestDb::migrated().await;
    let settings = db.settings_with(&[("RATE_LIMIT_WRITES_PER_MINUTE_PER_IP", "2".to_string())]);
    let function = LambdaFunction::new(http::app(
        AppState::build(settings).unwrap(),
        routes::all().merge(openapi::router()),
    ));
    let lambda = Lambda { function, db };
    // A /64 of its own (limits count per /64), so no earlier run's writes count.
    let random = uuid::Uuid::new_v4().as_u128();
    let source_ip = format!(
        "2001:db8:{:x}:{:x}::7",
        (random >> 16) as u16,
        random as u16
    );
    crate::support::within_one_rate_limit_minute().await;
    let mut statuses = Vec::new();
    for forged in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        let mut event = Event::new("POST", "/api/onboarding/session")
            .header("x-vercel-forwarded-for", forged)
            .header("x-real-ip", forged)
            .header("x-forwarded-for", &format!("{forged}, {source_ip}"));
        event.0["requestContext"]["http"]["sourceIp"] = source_ip.clone().into();
        statuses.push(lambda.invoke(event).await.status());
    }
    assert_eq!(statuses, [201, 201, 429]);
}

/// The Lambda Runtime API the `lambda` binary polls, on a local port: it hands
/// out the queued events and collects what the function answers.
struct RuntimeApi {
    address: String,
    events: tokio::sync::mpsc::UnboundedSender<Value>,
    answers: tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
}

impl RuntimeApi {
    async fn start() -> Self {
        use axum::extract::{Path, State};
        use axum::routing::{get, post};
        use std::sync::Arc;
        use tokio::sync::{Mutex, mpsc};

        type Queue = Arc<Mutex<mpsc::UnboundedReceiver<Value>>>;
        type Answers = mpsc::UnboundedSender<(String, Value)>;

        async fn next(State((queue, _)): State<(Queue, Answers)>) -> axum::response::Response {
            use axum::response::IntoResponse;
            let event = queue.lock().await.recv().await.expect("events queued");
            let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
            (
                [
                    (
                        "lambda-runtime-aws-request-id",
                        uuid::Uuid::new_v4().to_string(),
                    ),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:eu-west-1:123456789012:function:onboarding".into(),
                    ),
                ],
                axum::Json(event),
            )
                .into_response()
        }
        async fn answer(
            State((_, answers)): State<(Queue, Answers)>,
            Path((_, kind)): Path<(String, String)>,
            body: axum::body::Bytes,
        ) -> axum::http::StatusCode {
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = answers.send((kind, body));
            axum::http::StatusCode::ACCEPTED
        }
        async fn init_error(
            State((_, answers)): State<(Queue, Answers)>,
            body: axum::body::Bytes,
        ) -> axum::http::StatusCode {
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = answers.send(("init/error".into(), body));
            axum::http::StatusCode::ACCEPTED
        }

        let (events, queue) = mpsc::unbounded_channel();
        let (sender, answers) = mpsc::unbounded_channel();
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state((Arc::new(Mutex::new(queue)), sender));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            address,
            events,
            answers,
        }
    }

    async fn invoke(&mut self, event: Event) -> (String, Invocation) {
        self.events.send(event.0).unwrap();
        let (kind, body) =
            tokio::time::timeout(std::time::Duration::from_secs(20), self.answers.recv())
                .await
                .expect("the function answers within 20 s")
                .expect("the runtime API is up");
        (kind, Invocation(body))
    }
}

#[tokio::test]
async fn the_lambda_binary_serves_events_from_the_runtime_api() {
    use crate::support::function_command;

    let db = TestDb::migrated().await;
    let mut runtime = RuntimeApi::start().await;
    let _function = KilledOnDrop(
        function_command(env!("CARGO_BIN_EXE_lambda"), &db)
            .env("AWS_LAMBDA_RUNTIME_API", &runtime.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "onboarding")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .spawn()
            .unwrap(),
    );

    let (kind, health) = runtime.invoke(Event::new("GET", "/api/health")).await;
    assert_eq!(kind, "response", "{health:?}");
    assert_eq!(health.status(), 200, "{health:?}");
    assert_eq!(health.body()["checks"]["database"]["status"], "up");

    let (kind, started) = runtime
        .invoke(Event::new("POST", "/api/onboarding/session"))
        .await;
    assert_eq!(kind, "response", "{started:?}");
    assert_eq!(started.status(), 201, "{started:?}");
    assert!(started.cookies()[0].starts_with("onboarding_session="));

    let (kind, missing) = runtime
        .invoke(Event::new("GET", "/api/onboarding/nowhere"))
        .await;
    assert_eq!(kind, "response");
    missing.problem(404);
}

/// A child process that does not outlive the test, passing or failing.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
