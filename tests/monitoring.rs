//! Server-Timing figures and the OpenTelemetry export, against a local
//! collector that speaks OTLP/HTTP with the JSON encoding.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

use crate::support::api::{Api, Auth};
use crate::support::{TestDb, spawn_app_with};

/// `db;dur=1.23, cache;dur=0.40, total;dur=2.00` as (name, milliseconds).
fn timings(response: &reqwest::Response) -> Vec<(String, f64)> {
    let header = response.headers()["server-timing"].to_str().unwrap();
    header
        .split(',')
        .map(|metric| {
            let (name, duration) = metric.trim().split_once(";dur=").unwrap();
            (name.to_string(), duration.parse().unwrap())
        })
        .collect()
}

fn figure(timings: &[(String, f64)], name: &str) -> f64 {
    timings
        .iter()
        .find(|(metric, _)| metric == name)
        .unwrap_or_else(|| panic!("no {name} in {timings:?}"))
        .1
}

async fn status_timings(api: &Api, auth: &Auth) -> Vec<(String, f64)> {
    let response = api
        .request(reqwest::Method::GET, "/api/onboarding/status", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    timings(&response)
}

#[tokio::test]
async fn server_timing_splits_database_cache_and_total() {
    let db = TestDb::migrated().await;
    let app = spawn_app_with(db, &[]).await;
    let api = Api::at(&app.address);
    let auth = Auth::session(&api.start_session().await);

    let miss = status_timings(&api, &auth).await;
    let names: Vec<&str> = miss.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["db", "cache", "total"]);
    assert!(
        figure(&miss, "db") > 0.0,
        "a cache miss reads PostgreSQL: {miss:?}"
    );
    assert!(
        figure(&miss, "cache") > 0.0,
        "and looks in Redis first: {miss:?}"
    );
    assert!(
        figure(&miss, "total") >= figure(&miss, "db") + figure(&miss, "cache") - 0.02,
        "{miss:?}"
    );

    let hit = status_timings(&api, &auth).await;
    assert_eq!(
        figure(&hit, "db"),
        0.0,
        "a cache hit costs no PostgreSQL round trip: {hit:?}"
    );
    assert!(figure(&hit, "cache") > 0.0, "{hit:?}");
}

/// A collector that records what it is sent and answers with `status`
/// after `delay`.
struct Collector {
    address: String,
    received: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl Collector {
    async fn start(status: StatusCode, delay: Duration) -> Self {
        let received: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::default();
        let store = received.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    store.lock().unwrap().push((headers, body));
                    // An OTLP success is an ExportTraceServiceResponse, here empty.
                    (status, axum::Json(serde_json::json!({})))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { address, received }
    }

    fn spans(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, body)| {
                body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|attribute| attribute["key"] == key)
        .map(|attribute| &attribute["value"])
        .unwrap_or_else(|| panic!("no attribute {key} in {span}"))
}

#[tokio::test]
async fn each_request_is_exported_as_a_span_joined_to_the_callers_trace() {
    let collector = Collector::start(StatusCode::OK, Duration::ZERO).await;
    let db = TestDb::migrated().await;
    let app = spawn_app_with(
        db,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.address.clone()),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k%3D1".into()),
            ("OTEL_SERVICE_NAME", "wizard-api".into()),
        ],
    )
    .await;
    let api = Api::at(&app.address);
    let auth = Auth::session(&api.start_session().await);
    let response = api
        .request(reqwest::Method::GET, "/api/onboarding/steps/profile", &auth)
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();

    let mut span = None;
    for _ in 0..100 {
        span = collector
            .spans()
            .into_iter()
            .find(|span| attribute(span, "onboarding.request_id")["stringValue"] == "trace-me-1");
        if span.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let span = span.expect("the request's span reached the collector");
    assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
    assert_eq!(span["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(span["name"], "GET /api/onboarding/steps/{step}");
    assert_eq!(
        attribute(&span, "http.route")["stringValue"],
        "/api/onboarding/steps/{step}"
    );
    assert_eq!(
        attribute(&span, "http.response.status_code")["intValue"],
        status.to_string()
    );
    assert_eq!(
        attribute(&span, "onboarding.caller")["stringValue"],
        "session"
    );
    assert!(
        attribute(&span, "onboarding.db.duration_ms")["doubleValue"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let start: u128 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u128 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(end > start);

    let received = collector.received.lock().unwrap();
    let (headers, body) = &received[0];
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-api-key"], "k=1");
    let resource = &body["resourceSpans"][0]["resource"]["attributes"];
    assert!(
        resource
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "service.name" && a["value"]["stringValue"] == "wizard-api"),
        "{resource}"
    );
}

#[tokio::test]
async fn a_failing_or_hanging_collector_never_touches_the_wizard() {
    for (status, delay) in [
        (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO),
        (StatusCode::OK, Duration::from_secs(30)),
    ] {
        let collector = Collector::start(status, delay).await;
        let db = TestDb::migrated().await;
        let app = spawn_app_with(
            db,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.address.clone()),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "200".into()),
            ],
        )
        .await;
        let api = Api::at(&app.address);
        let auth = Auth::session(&api.start_session().await);
        for _ in 0..20 {
            let response = api
                .request(reqwest::Method::GET, "/api/onboarding/status", &auth)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "collector {status} after {delay:?}");
        }
    }
}
