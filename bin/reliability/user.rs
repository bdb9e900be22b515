//! One simulated user of the wizard: a loop of status reads, saves with
//! `If-Match` and `Idempotency-Key` (retried after timeouts, 503 and 409),
//! stale saves, events and AI suggestions, remembering every save the server
//! acknowledged so that the read-back can prove none was lost or duplicated.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::ensure;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::load::Shared;
use crate::tokens::{claims, hs_token};

/// Steps the load saves, each with a text field that makes every save unique.
const SAVE_STEPS: [&str; 4] = ["profile", "organization", "goals", "preferences"];
/// Retries of one logical save (timeouts, 503, 409) before it is given up.
const SAVE_ATTEMPTS: usize = 10;

/// A small deterministic PRNG (xorshift64*, no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone)]
pub enum StepEvent {
    Ack {
        version: i64,
        answers: Value,
    },
    /// A save whose outcome the client does not know (it may have landed).
    Uncertain,
}

#[derive(Clone)]
enum Credential {
    Token(String),
    Session(String),
}

pub struct User {
    pub name: String,
    credential: Credential,
    rng: Rng,
    /// The version of each step as this user last saw it (its ETag).
    seen: HashMap<&'static str, i64>,
    pub history: HashMap<&'static str, Vec<StepEvent>>,
    seq: u64,
    ai_opted_in: bool,
}

/// Sends a set-up request and fails, naming it `what`, unless it answers
/// `expected`: set-up that went wrong would make every later check meaningless.
pub async fn send_expecting(
    request: reqwest::RequestBuilder,
    expected: StatusCode,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    let response = request.send().await?;
    ensure!(
        response.status() == expected,
        "{what} answered {}",
        response.status()
    );
    Ok(response)
}

/// `count` users: four in five sign in with a JWT, one in five is an anonymous session.
pub async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    count: usize,
) -> anyhow::Result<Vec<User>> {
    let mut users = Vec::new();
    for i in 0..count {
        let name = format!("rel_u{i}");
        let credential = if i % 5 == 4 {
            let request = client.post(format!("{base}/api/onboarding/session"));
            let body: Value = send_expecting(request, StatusCode::CREATED, "POST session")
                .await?
                .json()
                .await?;
            Credential::Session(body["session"].as_str().unwrap_or_default().to_string())
        } else {
            Credential::Token(hs_token(&claims(&name)))
        };
        users.push(User {
            name,
            credential,
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 0x1000_0001)),
            seen: HashMap::new(),
            history: HashMap::new(),
            seq: 0,
            ai_opted_in: false,
        });
    }
    Ok(users)
}

enum Settled {
    Done,
    Retry(Duration),
}

impl User {
    fn request(&self, shared: &Shared, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = shared
            .client
            .request(method, format!("{}{path}", shared.base));
        match &self.credential {
            Credential::Token(token) => request.bearer_auth(token),
            Credential::Session(session) => request.header("x-onboarding-session", session),
        }
    }

    /// A request to `/api/onboarding/steps/{step}` as this user.
    pub fn step_request(
        &self,
        shared: &Shared,
        method: Method,
        step: &str,
    ) -> reqwest::RequestBuilder {
        self.request(shared, method, &format!("/api/onboarding/steps/{step}"))
    }

    /// Records an answer the load does not expect as this user's problem.
    fn unexpected(&self, shared: &Shared, what: &str, status: StatusCode, body: &[u8]) {
        shared.problem(format!(
            "{}: {what} answered {status}: {}",
            self.name,
            String::from_utf8_lossy(body)
        ));
    }

    /// A save of `step` whose outcome is unknown: the next save learns the version again.
    fn outcome_unknown(&mut self, step: &'static str) {
        self.history
            .entry(step)
            .or_default()
            .push(StepEvent::Uncertain);
        self.seen.remove(step);
    }

    fn pick_step(&mut self) -> &'static str {
        SAVE_STEPS[self.rng.below(4) as usize]
    }

    fn answers(&mut self, step: &str) -> Value {
        self.seq += 1;
        let marker = format!("{} #{}", self.name, self.seq);
        match step {
            "profile" => json!({ "fullName": marker, "jobRole": "founder" }),
            "organization" => json!({ "name": marker, "slug": format!("org-{}", self.seq),
                                      "size": "2-10", "industry": "saas" }),
            "goals" => json!({ "useCases": ["analytics"], "primaryGoal": marker }),
            _ => {
                json!({ "productUpdates": self.seq.is_multiple_of(2), "weeklyDigest": self.seq.is_multiple_of(3),
                         "timezone": "Europe/Berlin", "locale": "de-DE" })
            }
        }
    }

    pub async fn run(mut self, shared: Arc<Shared>) -> User {
        // Bounded: the deadline, and at most this many actions.
        for _ in 0..100_000 {
            if Instant::now() >= shared.deadline {
                break;
            }
            match self.rng.below(100) {
                0..=39 => self.save(&shared).await,
                40..=64 => self.status(&shared).await,
                65..=74 => {
                    let step = self.pick_step();
                    self.refresh(&shared, step).await;
                }
                75..=89 => self.event(&shared).await,
                90..=94 => self.ai_suggestion(&shared).await,
                _ => self.stale_save(&shared).await,
            }
            let think = 20 + self.rng.below(80);
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
        self
    }

    async fn status(&mut self, shared: &Shared) {
        let request = self.request(shared, Method::GET, "/api/onboarding/status");
        if let Some((status, _, body)) = shared.send("GET status", request).await {
            shared.counters.status_reads.fetch_add(1, Ordering::Relaxed);
            if status != 200 && status != 503 {
                self.unexpected(shared, "GET status", status, &body);
            }
        }
    }

    /// Opts in to AI suggestions once, then asks for one. With the provider
    /// down the wizard must answer 200 `{"suggestion": null}`, never 5xx.
    async fn ai_suggestion(&mut self, shared: &Shared) {
        if !self.ai_opted_in {
            let request = self
                .request(shared, Method::PUT, "/api/onboarding/ai/preferences")
                .json(&json!({ "mode": "suggest", "consentVersion": "2026-11" }));
            match shared.send("PUT ai/preferences", request).await {
                Some((status, _, _)) if status == 200 => self.ai_opted_in = true,
                Some((status, _, body)) if !status.is_server_error() => {
                    self.unexpected(shared, "PUT ai/preferences", status, &body)
                }
                _ => {}
            }
            return;
        }
        let request = self
            .request(shared, Method::POST, "/api/onboarding/ai/suggest")
            .json(&json!({ "step": "goals", "field": "primaryGoal" }));
        let Some((status, _, body)) = shared.send("POST ai/suggest", request).await else {
            return;
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match status.as_u16() {
            201 => {
                shared.counters.ai_suggested.fetch_add(1, Ordering::Relaxed);
            }
            200 if body["suggestion"].is_null() => {
                shared
                    .counters
                    .ai_unavailable
                    .fetch_add(1, Ordering::Relaxed);
            }
            500..=599 => {}
            _ => shared.problem(format!(
                "{}: POST ai/suggest answered {status}: {body}",
                self.name
            )),
        }
    }

    async fn event(&mut self, shared: &Shared) {
        let step = self.pick_step();
        let request = self
            .request(shared, Method::POST, "/api/onboarding/events")
            .json(&json!({ "events": [
                { "type": "step_viewed", "step": step },
                { "type": "step_completed", "step": step, "properties": { "ms": 1200 } }
            ]}));
        if let Some((status, _, body)) = shared.send("POST events", request).await {
            shared.counters.events.fetch_add(1, Ordering::Relaxed);
            if status == 202 {
                let accepted = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|body| body["accepted"].as_u64());
                match accepted {
                    Some(accepted) => {
                        shared
                            .counters
                            .events_acknowledged
                            .fetch_add(accepted, Ordering::Relaxed);
                    }
                    None => shared.problem(format!(
                        "{}: POST events 202 without `accepted`: {}",
                        self.name,
                        String::from_utf8_lossy(&body)
                    )),
                }
            } else if status != 503 {
                self.unexpected(shared, "POST events", status, &body);
            }
        }
    }

    /// Reads a step and remembers its version.
    async fn refresh(&mut self, shared: &Shared, step: &'static str) -> bool {
        let request = self.step_request(shared, Method::GET, step);
        match shared.send("GET step", request).await {
            Some((status, _, body)) if status == 200 => {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(view) => {
                        let version = view["version"].as_i64().unwrap_or(-1);
                        self.seen.insert(step, version);
                        true
                    }
                    Err(error) => {
                        shared.problem(format!("{}: GET {step} is not JSON: {error}", self.name));
                        false
                    }
                }
            }
            Some((status, _, body)) if status != 503 => {
                self.unexpected(shared, &format!("GET {step}"), status, &body);
                false
            }
            _ => false,
        }
    }

    /// A save with an outdated `If-Match`, as a second tab would send: must be 412.
    async fn stale_save(&mut self, shared: &Shared) {
        let step = self.pick_step();
        let version = self.seen.get(step).copied().unwrap_or(0);
        if version < 1 {
            return self.save(shared).await;
        }
        let answers = self.answers(step);
        let request = self
            .step_request(shared, Method::PUT, step)
            .header("if-match", format!("\"{}\"", version - 1))
            .json(&json!({ "answers": answers }));
        match shared.send("PUT step (stale)", request).await {
            Some((status, _, _)) if status == 412 => {
                shared.counters.stale_412.fetch_add(1, Ordering::Relaxed);
            }
            Some((status, _, _)) if status == 503 => {}
            Some((status, _, body)) => self.unexpected(
                shared,
                &format!("a stale If-Match on {step} (v{} < v{version})", version - 1),
                status,
                &body,
            ),
            None => {}
        }
    }

    /// One logical save: one Idempotency-Key, retried after timeouts, 503 and 409.
    async fn save(&mut self, shared: &Shared) {
        let step = self.pick_step();
        if !self.seen.contains_key(step) && !self.refresh(shared, step).await {
            return;
        }
        let if_match = self.seen[step];
        let answers = self.answers(step);
        let complete = self.rng.below(3) == 0;
        let body =
            serde_json::to_vec(&json!({ "answers": answers, "complete": complete })).expect("json");
        let key = format!("rel-{}-{}-{}", shared.run_id, self.name, self.seq);
        let simulate_timeout = self.rng.below(10) == 0;
        for attempt in 0..SAVE_ATTEMPTS {
            if Instant::now() >= shared.deadline + Duration::from_secs(20) {
                break;
            }
            if attempt > 0 {
                shared.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let started = Instant::now();
            let request = self
                .step_request(shared, Method::PUT, step)
                .header("content-type", "application/json")
                .header("if-match", format!("\"{if_match}\""))
                .header("idempotency-key", &key)
                .body(body.clone());
            let (status, headers, bytes) = if simulate_timeout && attempt == 0 {
                // Give up on the answer after a few milliseconds, as a client on
                // a bad network would; the write may or may not land.
                let timeout = Duration::from_millis(1 + self.rng.below(150));
                shared.counters.requests.fetch_add(1, Ordering::Relaxed);
                // The timeout covers the body too: an answer whose headers
                // arrived in time and whose body did not is given up on as well.
                let outcome = match request.timeout(timeout).send().await {
                    Ok(response) => shared.receive("PUT step", response).await,
                    Err(error) => Err(error),
                };
                match outcome {
                    Err(error) if error.is_timeout() => {
                        shared
                            .counters
                            .simulated_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                    Err(error) => {
                        shared.transport_error(format!("PUT step: {error}"));
                        continue;
                    }
                    Ok(answer) => answer,
                }
            } else {
                let Some(answer) = shared.send("PUT step", request).await else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                answer
            };
            match self.settle(shared, step, if_match, status, &headers, &bytes, started) {
                Settled::Done => return,
                Settled::Retry(wait) => tokio::time::sleep(wait).await,
            }
        }
        shared.counters.given_up.fetch_add(1, Ordering::Relaxed);
        self.outcome_unknown(step);
    }

    #[allow(clippy::too_many_arguments)]
    fn settle(
        &mut self,
        shared: &Shared,
        step: &'static str,
        if_match: i64,
        status: StatusCode,
        headers: &HeaderMap,
        bytes: &[u8],
        started: Instant,
    ) -> Settled {
        match status.as_u16() {
            200 => {
                let view: Value = match serde_json::from_slice(bytes) {
                    Ok(view) => view,
                    Err(error) => {
                        shared.problem(format!("{}: a 200 save is not JSON: {error}", self.name));
                        return Settled::Done;
                    }
                };
                let version = view["version"].as_i64().unwrap_or(-1);
                let etag = headers
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if etag != format!("\"{version}\"") {
                    shared.problem(format!(
                        "{}: save of {step} answered ETag {etag:?} for version {version}",
                        self.name
                    ));
                }
                if version != if_match + 1 {
                    shared.problem(format!(
                        "{}: save of {step} with If-Match {if_match} acknowledged version {version}",
                        self.name
                    ));
                }
                if headers.contains_key("idempotent-replayed") {
                    shared.counters.replays.fetch_add(1, Ordering::Relaxed);
                }
                shared
                    .counters
                    .saves_acknowledged
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(back) = *shared.pg_back.lock().unwrap()
                    && started >= back
                {
                    shared
                        .log
                        .lock()
                        .unwrap()
                        .first_save_after
                        .push(Instant::now());
                }
                self.seen.insert(step, version);
                self.history.entry(step).or_default().push(StepEvent::Ack {
                    version,
                    answers: view["answers"].clone(),
                });
                Settled::Done
            }
            503 => {
                let wait = headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(2);
                Settled::Retry(Duration::from_secs(wait))
            }
            // Another request with this key is in flight (our abandoned attempt).
            409 if String::from_utf8_lossy(bytes).contains("Idempotency-Key") => {
                Settled::Retry(Duration::from_millis(200))
            }
            412 => {
                // Only a retry can meet this: our own abandoned attempt landed
                // after the retry read the row. Its outcome is unknown to us.
                shared.counters.refresh_412.fetch_add(1, Ordering::Relaxed);
                self.outcome_unknown(step);
                Settled::Done
            }
            _ => {
                self.unexpected(
                    shared,
                    &format!("save of {step} (If-Match {if_match})"),
                    status,
                    bytes,
                );
                self.outcome_unknown(step);
                Settled::Done
            }
        }
    }
}
