//! After the load: hostile tokens (in the header and in the Supabase cookie)
//! and hostile bodies (broken, deep, huge, mistyped JSON; wrong content types;
//! 10 MB) against the routes, each of which must be answered with a 4xx
//! problem document (401 with a challenge for tokens), never a 5xx or a hang.

use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::tokens::{bad_tokens, claims, hs_token, rs_token};
use crate::user::send_expecting;

#[derive(Default)]
pub struct Hostile {
    pub tried: usize,
    pub failures: Vec<String>,
}

impl Hostile {
    /// Counts one hostile request and keeps a failure unless it was answered
    /// with a problem document and `status_ok`. `answer` is (whether the
    /// status is as expected, the status as printed, the content type), or
    /// why there was no answer.
    fn record(&mut self, what: &str, expect: &str, answer: Result<(bool, String, String), String>) {
        self.tried += 1;
        match answer {
            Ok((status_ok, status, content_type)) => {
                if !status_ok || content_type != "application/problem+json" {
                    self.failures.push(format!(
                        "{what}: expected {expect} problem+json, got {status} {content_type:?}"
                    ));
                }
            }
            Err(error) => self.failures.push(format!("{what}: no answer: {error}")),
        }
    }

    /// `expect` is "401" (with `WWW-Authenticate`) or "4xx".
    fn check(
        &mut self,
        what: &str,
        expect: &str,
        outcome: Result<reqwest::Response, reqwest::Error>,
    ) {
        let answer = outcome.map_err(|error| error.to_string()).map(|response| {
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let ok = match expect {
                "401" => status == 401 && response.headers().contains_key("www-authenticate"),
                _ => status.is_client_error(),
            };
            (ok, status.to_string(), content_type)
        });
        self.record(what, expect, answer);
    }

    /// The answer to a body sent by hand (`send_raw`): must be 4xx.
    fn check_raw(&mut self, what: &str, outcome: anyhow::Result<(u16, String)>) {
        let answer = outcome
            .map_err(|error| format!("{error:#}"))
            .map(|(status, content_type)| {
                (
                    (400..500).contains(&status),
                    status.to_string(),
                    content_type,
                )
            });
        self.record(what, "4xx", answer);
    }
}

/// Sends the whole hostile corpus; fails only when a valid token is refused.
pub async fn send_corpus(base: &str, client: &reqwest::Client) -> anyhow::Result<Hostile> {
    let mut result = Hostile::default();
    let valid = hs_token(&claims("rel_hostile_control"));
    let rs_valid = rs_token(&claims("rel_hostile_rs"));
    // Controls: the corpus is rejected for what it is, not because nothing is accepted.
    for (name, token) in [("HS256", &valid), ("RS256 via JWKS", &rs_valid)] {
        let request = client
            .get(format!("{base}/api/onboarding/status"))
            .bearer_auth(token);
        send_expecting(
            request,
            StatusCode::OK,
            &format!("control: a valid {name} token"),
        )
        .await?;
    }

    let targets: [(Method, &str); 3] = [
        (Method::GET, "/api/onboarding/status"),
        (Method::PUT, "/api/onboarding/steps/profile"),
        (Method::POST, "/api/onboarding/events"),
    ];
    for (name, token) in bad_tokens() {
        for (method, path) in &targets {
            let body = if *path == "/api/onboarding/events" {
                json!({ "events": [] })
            } else {
                json!({ "answers": { "fullName": "x" } })
            };
            let mut request = client
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(&token);
            if *method != Method::GET {
                request = request.json(&body);
            }
            result.check(
                &format!("token {name} → {method} {path}"),
                "401",
                request.send().await,
            );
        }
        // The same token in a cookie the Supabase preset reads.
        let cookie = format!("sb-reliability-auth-token={token}");
        result.check(
            &format!("token {name} in cookie → GET status"),
            "401",
            client
                .get(format!("{base}/api/onboarding/status"))
                .header("cookie", cookie)
                .send()
                .await,
        );
    }

    let body_targets: [(Method, &str); 3] = [
        (Method::PUT, "/api/onboarding/steps/profile"),
        (Method::POST, "/api/onboarding/events"),
        (Method::POST, "/api/onboarding/complete"),
    ];
    // A fresh user with nothing saved: complete cannot succeed whatever the body.
    let token = hs_token(&claims("rel_hostile_bodies"));
    for (name, body, content_type) in bad_bodies()? {
        for (method, path) in &body_targets {
            if body.len() > 65536 {
                result.check_raw(
                    &format!("body {name} → {method} {path}"),
                    send_raw(base, method.as_str(), path, &token, content_type, &body).await,
                );
                continue;
            }
            let mut request = client
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(&token)
                .body(body.clone());
            if !content_type.is_empty() {
                request = request.header("content-type", content_type);
            }
            result.check(
                &format!("body {name} → {method} {path}"),
                "4xx",
                request.send().await,
            );
        }
    }
    // 10 MB bodies: the server may answer 413 and close before the client has
    // sent everything, which an ordinary client reports as a send error.
    // Written by hand, so whatever the server answered is read.
    let huge = vec![b' '; 10 << 20];
    for (method, path) in &body_targets {
        let what = format!("body 10 MB → {method} {path}");
        let outcome = send_raw(
            base,
            method.as_str(),
            path,
            &token,
            "application/json",
            &huge,
        )
        .await;
        result.check_raw(&what, outcome);
    }
    Ok(result)
}

/// Bodies that must each be answered 4xx: (name, body, content type).
fn bad_bodies() -> anyhow::Result<Vec<(&'static str, Vec<u8>, &'static str)>> {
    let mut bodies: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated JSON",
            br#"{"answers": {"fullName": "Ad"#.to_vec(),
            "application/json",
        ),
        ("empty body", Vec::new(), "application/json"),
        (
            "deep nesting [ x100k",
            "[".repeat(100_000).into_bytes(),
            "application/json",
        ),
        (
            "deep nesting {\"a\": x100k",
            "{\"a\":".repeat(100_000).into_bytes(),
            "application/json",
        ),
        (
            "deep nesting inside answers",
            format!("{{\"answers\": {{\"fullName\": {}}}}}", "[".repeat(50_000)).into_bytes(),
            "application/json",
        ),
        (
            "60 KB string",
            serde_json::to_vec(&json!({ "answers": { "fullName": "x".repeat(30_000) },
                                       "events": [{ "type": "step_viewed", "step": "y".repeat(30_000) }] }))?,
            "application/json",
        ),
        (
            "1 MB string",
            serde_json::to_vec(&json!({ "answers": { "fullName": "x".repeat(1 << 20) } }))?,
            "application/json",
        ),
        (
            "answers a string",
            br#"{"answers": "x", "complete": "yes", "events": 1}"#.to_vec(),
            "application/json",
        ),
        ("an array", b"[]".to_vec(), "application/json"),
        ("null", b"null".to_vec(), "application/json"),
        ("a number", b"123".to_vec(), "application/json"),
        (
            "unknown field",
            br#"{"answers": {}, "events": [], "extra": 1}"#.to_vec(),
            "application/json",
        ),
        (
            "wrong field types",
            br#"{"answers": {"fullName": 7, "jobRole": ["founder"]}, "events": [{"type": 3}]}"#
                .to_vec(),
            "application/json",
        ),
        (
            "invalid UTF-8",
            b"{\"answers\": {\"fullName\": \"\xff\xfe\xc3\x28\"}, \"events\": []}".to_vec(),
            "application/json",
        ),
        (
            "NaN literal",
            br#"{"answers": {"fullName": NaN}}"#.to_vec(),
            "application/json",
        ),
        (
            "BOM first",
            b"\xef\xbb\xbf{\"answers\": {}}".to_vec(),
            "application/json",
        ),
        (
            "wrong content type",
            br#"{"answers": {}}"#.to_vec(),
            "text/plain",
        ),
        (
            "form content type",
            b"answers=1".to_vec(),
            "application/x-www-form-urlencoded",
        ),
        ("no content type", br#"{"answers": {}}"#.to_vec(), ""),
    ];
    // A JSON body that is valid everywhere but is an array of 200 events.
    let many: Vec<Value> = (0..200).map(|_| json!({ "type": "step_viewed" })).collect();
    bodies.push((
        "too many events",
        serde_json::to_vec(&json!({ "answers": 1, "events": many }))?,
        "application/json",
    ));
    Ok(bodies)
}

/// Sends a body by hand and returns the answer's status and
/// content type, however much of the body the server read.
async fn send_raw(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let size = body.len();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: {content_type}\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    for chunk in body.chunks(64 * 1024) {
        match tokio::time::timeout(Duration::from_secs(5), stream.write_all(chunk)).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no status line in the answer")?;
    let content_type = text
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    Ok((status, content_type))
}
