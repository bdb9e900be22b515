//! OpenTelemetry export of requests as spans, over OTLP/HTTP with the JSON
//! encoding (`POST {endpoint}/v1/traces`, `Content-Type: application/json`),
//! which every OpenTelemetry Collector and the hosted backends accept.
//!
//! One server span per request, carrying the method, route, status, caller
//! kind, request id and the time spent in PostgreSQL and Redis. A W3C
//! `traceparent` from the caller (the Next.js app's own tracing) makes the
//! span a child in that trace. Spans go through a bounded queue to one sender
//! task that posts them in batches; on Vercel the request waits for its span
//! to be posted after the response (`wait_until`), so a frozen function
//! loses none. Telemetry never slows or fails a request: when the queue is
//! full or the collector is down, spans are dropped and counted in a log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::settings::{ConfigError, ExposeSecret, Lookup, SecretString, parse_number};

/// Spans waiting to be sent at most; more are dropped.
const QUEUE_CAPACITY: usize = 4096;
/// Spans in one export request at most.
const MAX_SPANS_PER_EXPORT: usize = 512;
/// OTLP's `SPAN_KIND_SERVER`.
const SPAN_KIND_SERVER: u8 = 2;
/// OTLP's `STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: u8 = 2;

/// Where and how spans are exported; `None` when no endpoint is configured.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// The full traces URL, e.g. `http://collector:4318/v1/traces`.
    pub traces_url: url::Url,
    /// Extra headers, such as an API key; never logged.
    pub headers: Vec<(String, SecretString)>,
    pub service_name: String,
    pub timeout: Duration,
}

impl OtlpSettings {
    /// Reads the standard `OTEL_*` variables; `None` when neither endpoint is set.
    pub fn from_lookup(lookup: &dyn Lookup) -> Result<Option<Self>, ConfigError> {
        let traces_url = match (
            lookup.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            lookup.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(url), _) => parse_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url)?,
            (None, Some(base)) => {
                // The spec: the signal path is appended to the base endpoint.
                let joined = format!("{}/v1/traces", base.trim_end_matches('/'));
                parse_url("OTEL_EXPORTER_OTLP_ENDPOINT", &joined)?
            }
            (None, None) => return Ok(None),
        };
        match lookup.get("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
            None | Some("http/json") => {}
            Some(other) => {
                return Err(ConfigError::new(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    format!("`{other}` is not supported; this exporter speaks `http/json`"),
                ));
            }
        }
        let headers = match lookup.get("OTEL_EXPORTER_OTLP_HEADERS") {
            Some(raw) => parse_headers(&raw)?,
            None => Vec::new(),
        };
        let service_name = lookup
            .get("OTEL_SERVICE_NAME")
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| "onboarding".to_string());
        let timeout_ms = parse_number(lookup, "OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, 1..=60_000)?;
        Ok(Some(Self {
            traces_url,
            headers,
            service_name,
            timeout: Duration::from_millis(timeout_ms),
        }))
    }
}

fn parse_url(variable: &'static str, raw: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw)
        .map_err(|_| ConfigError::new(variable, format!("`{raw}` is not a URL")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(variable, "must be an http or https URL"));
    }
    Ok(url)
}

/// `key1=value1,key2=value2`, values percent-encoded, as the spec defines it.
fn parse_headers(raw: &str) -> Result<Vec<(String, SecretString)>, ConfigError> {
    raw.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                ConfigError::new("OTEL_EXPORTER_OTLP_HEADERS", "expected key=value pairs")
            })?;
            let key = key.trim();
            let value: String =
                url::form_urlencoded::parse(format!("v={}", value.trim()).as_bytes())
                    .map(|(_, value)| value.into_owned())
                    .next()
                    .unwrap_or_default();
            if http::HeaderName::from_bytes(key.as_bytes()).is_err()
                || http::HeaderValue::from_str(&value).is_err()
            {
                return Err(ConfigError::new(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    format!("`{key}` is not a valid header"),
                ));
            }
            Ok((key.to_string(), SecretString::from(value)))
        })
        .collect()
}

/// Sends finished requests to the collector; cheap to clone.
#[derive(Clone)]
pub struct Exporter {
    inner: Arc<Inner>,
}

struct Inner {
    settings: OtlpSettings,
    http: reqwest::Client,
    queue: OnceLock<mpsc::Sender<Queued>>,
    dropped: AtomicU64,
}

struct Queued {
    span: Value,
    sent: oneshot::Sender<()>,
}

impl Exporter {
    pub fn new(settings: OtlpSettings, http: reqwest::Client) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                http,
                queue: OnceLock::new(),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Queues the span of a served request. The future resolves once the
    /// batch holding it was posted (or dropped); awaiting it is optional.
    pub fn export(&self, served: &super::Served<'_>) -> impl Future<Output = ()> + Send + 'static {
        let span = span_of(served);
        let (sent, done) = oneshot::channel();
        // The sender task starts with the first request, on its runtime.
        let queue = self.inner.queue.get_or_init(|| self.start_sender());
        if queue.try_send(Queued { span, sent }).is_err() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        async move {
            let _ = done.await;
        }
    }

    fn start_sender(&self) -> mpsc::Sender<Queued> {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(send_until_closed(self.inner.clone(), receiver));
        sender
    }
}

async fn send_until_closed(inner: Arc<Inner>, mut queue: mpsc::Receiver<Queued>) {
    let mut batch = Vec::new();
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_SPANS_PER_EXPORT {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let spans: Vec<Value> = batch.iter_mut().map(|queued| queued.span.take()).collect();
        if let Err(error) = post(&inner, spans).await {
            let dropped = inner
                .dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed)
                + batch.len() as u64;
            tracing::warn!(%error, spans = batch.len(), dropped_total = dropped, "spans not exported");
        }
        for queued in batch.drain(..) {
            let _ = queued.sent.send(());
        }
    }
}

async fn post(inner: &Inner, spans: Vec<Value>) -> Result<(), String> {
    let settings = &inner.settings;
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                attribute("service.name", json!({ "stringValue": settings.service_name })),
                attribute("service.version", json!({ "stringValue": env!("CARGO_PKG_VERSION") })),
                attribute("telemetry.sdk.language", json!({ "stringValue": "rust" })),
            ]},
            "scopeSpans": [{
                "scope": { "name": "onboarding", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    });
    let mut request = inner
        .http
        .post(settings.traces_url.clone())
        .timeout(settings.timeout)
        .json(&body);
    for (name, value) in &settings.headers {
        request = request.header(name, value.expose_secret());
    }
    let response = request.send().await.map_err(|error| error.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the collector answered {status}"))
    }
}

fn attribute(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

/// The OTLP/JSON span of a served request. Ids are hex, times are
/// nanoseconds since the epoch as decimal strings, as the JSON mapping wants.
fn span_of(served: &super::Served<'_>) -> Value {
    let parent = served.traceparent.and_then(parse_traceparent);
    let trace_id = parent
        .as_ref()
        .map(|(trace_id, _)| trace_id.clone())
        .unwrap_or_else(|| random_hex(16));
    let start = served
        .started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let end = start + served.total;
    let route = served.route.unwrap_or(served.path);
    let mut attributes = vec![
        attribute(
            "http.request.method",
            json!({ "stringValue": served.method }),
        ),
        attribute("url.path", json!({ "stringValue": served.path })),
        attribute(
            "http.response.status_code",
            json!({ "intValue": served.status.to_string() }),
        ),
        attribute("onboarding.caller", json!({ "stringValue": served.caller })),
        attribute(
            "onboarding.request_id",
            json!({ "stringValue": served.request_id }),
        ),
        attribute(
            "onboarding.db.duration_ms",
            json!({ "doubleValue": super::millis(served.db) }),
        ),
        attribute(
            "onboarding.cache.duration_ms",
            json!({ "doubleValue": super::millis(served.cache) }),
        ),
    ];
    if let Some(route) = served.route {
        attributes.push(attribute("http.route", json!({ "stringValue": route })));
    }
    let mut span = json!({
        "traceId": trace_id,
        "spanId": random_hex(8),
        "name": format!("{} {route}", served.method),
        "kind": SPAN_KIND_SERVER,
        "startTimeUnixNano": start.as_nanos().to_string(),
        "endTimeUnixNano": end.as_nanos().to_string(),
        "attributes": attributes,
    });
    if served.status >= 500 {
        span["status"] = json!({ "code": STATUS_CODE_ERROR });
    }
    if let Some((_, parent_span_id)) = parent {
        span["parentSpanId"] = json!(parent_span_id);
    }
    span
}

/// `00-{32 hex trace id}-{16 hex span id}-{2 hex flags}`; all-zero ids are invalid.
fn parse_traceparent(header: &str) -> Option<(String, String)> {
    let mut parts = header.trim().split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let is_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = is_hex(version, 2)
        && version != "ff"
        && is_hex(trace_id, 32)
        && is_hex(span_id, 16)
        && is_hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && span_id.bytes().any(|b| b != b'0');
    valid.then(|| (trace_id.to_string(), span_id.to_string()))
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    if getrandom::fill(&mut buffer).is_err() || buffer.iter().all(|b| *b == 0) {
        // An id only has to be unique enough to tell spans apart.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        buffer = nanos.to_le_bytes()[..bytes.min(16)].to_vec();
        buffer[0] |= 1;
    }
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::lookup_of as lookup;

    #[test]
    fn the_traces_url_follows_the_spec() {
        let none = OtlpSettings::from_lookup(&lookup(&[])).unwrap();
        assert!(none.is_none());
        let base = OtlpSettings::from_lookup(&lookup(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:4318/",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(base.traces_url.as_str(), "http://collector:4318/v1/traces");
        let specific = OtlpSettings::from_lookup(&lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://x.example/otlp/traces",
            ),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            specific.traces_url.as_str(),
            "https://x.example/otlp/traces"
        );
        assert_eq!(specific.service_name, "onboarding");
    }

    #[test]
    fn headers_are_decoded_and_bad_settings_name_their_variable() {
        let settings = OtlpSettings::from_lookup(&lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%20b, x-team=core"),
        ]))
        .unwrap()
        .unwrap();
        let headers: Vec<(&str, &str)> = settings
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect();
        assert_eq!(headers, vec![("x-api-key", "a b"), ("x-team", "core")]);
        for (pairs, variable) in [
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")][..],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ][..],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
                ][..],
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
        ] {
            let error = OtlpSettings::from_lookup(&lookup(pairs)).unwrap_err();
            assert_eq!(error.variable, variable);
        }
    }

    #[test]
    fn a_valid_traceparent_is_joined_and_an_invalid_one_ignored() {
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some((
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "00f067aa0ba902b7".into()
            ))
        );
        for invalid in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f35-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(parse_traceparent(invalid), None, "{invalid}");
        }
    }
}
