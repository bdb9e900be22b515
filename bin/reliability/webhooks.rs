//! A webhook receiver on loopback for the outbox's deliveries, whose
//! behaviour the fault injection switches (answering, failing, hanging), and
//! the check after the load: once the scheduled run has drained what is
//! due, every event the outbox holds was delivered, none died, and the
//! receiver acknowledged each one (a repeat carrying the same `webhook-id`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};

use crate::services::{Postgres, serve_loopback};

pub const RECEIVER_OK: u8 = 0;
pub const RECEIVER_FAILING: u8 = 1;
pub const RECEIVER_HANGING: u8 = 2;

/// The `whsec_` secret the API signs with (the receiver does not verify:
/// tests/outbox.rs does, with the `standardwebhooks` package).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the receiver answers now, and the `webhook-id`s it acknowledged,
/// each with how many times.
#[derive(Clone, Default)]
pub struct Receiver {
    pub mode: Arc<AtomicU8>,
    acknowledged: Arc<Mutex<HashMap<String, u32>>>,
}

impl Receiver {
    /// Serves `POST /webhooks` as `mode` says; returns its URL.
    pub async fn serve(&self) -> anyhow::Result<String> {
        let receiver = self.clone();
        let app = axum::Router::new().route(
            "/webhooks",
            axum::routing::post(move |headers: HeaderMap| {
                let receiver = receiver.clone();
                async move { receiver.answer(&headers).await }
            }),
        );
        let (address, _) = serve_loopback(app).await?;
        Ok(format!("http://{address}/webhooks"))
    }

    async fn answer(&self, headers: &HeaderMap) -> StatusCode {
        match self.mode.load(Ordering::Relaxed) {
            RECEIVER_FAILING => StatusCode::SERVICE_UNAVAILABLE,
            RECEIVER_HANGING => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                StatusCode::GATEWAY_TIMEOUT
            }
            _ => {
                let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) else {
                    return StatusCode::BAD_REQUEST;
                };
                *self
                    .acknowledged
                    .lock()
                    .unwrap()
                    .entry(id.to_string())
                    .or_default() += 1;
                StatusCode::NO_CONTENT
            }
        }
    }
}

/// The API settings that point the outbox at `url`, with retries quick
/// enough for a short run and attempts enough that none dies of the faults.
pub fn settings(url: String) -> Vec<(&'static str, String)> {
    vec![
        ("OUTBOUND_WEBHOOK_URLS", url),
        ("OUTBOUND_WEBHOOK_SECRET", SECRET.into()),
        ("OUTBOUND_TIMEOUT_MS", "500".into()),
        ("OUTBOX_BACKOFF_BASE_MS", "200".into()),
        ("OUTBOX_MAX_ATTEMPTS", "100".into()),
    ]
}

/// What the outbox check found: summary lines and failures.
#[derive(Default)]
pub struct OutboxCheck {
    pub lines: Vec<String>,
    pub failures: Vec<String>,
}

/// Runs the scheduled delivery until nothing is due (at most `budget`),
/// then holds the outbox against what the receiver acknowledged.
pub async fn drain_and_check(
    client: &reqwest::Client,
    base: &str,
    cron_secret: &str,
    pg: &Postgres,
    receiver: &Receiver,
    budget: Duration,
) -> anyhow::Result<OutboxCheck> {
    let (db, task) = pg.connect("onboarding").await?;
    let started = Instant::now();
    let mut runs = 0;
    let pending = loop {
        let pending: i64 = db
            .query_one(
                "select count(*) from onboarding.outbox where state = 'pending'",
                &[],
            )
            .await?
            .get(0);
        if pending == 0 || started.elapsed() > budget {
            break pending;
        }
        runs += 1;
        let _ = client
            .get(format!("{base}/api/cron/deliver"))
            .bearer_auth(cron_secret)
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let rows = db
        .query("select event_id::text, state from onboarding.outbox", &[])
        .await?;
    task.abort();
    let acknowledged = receiver.acknowledged.lock().unwrap().clone();
    let mut check = OutboxCheck::default();
    let (mut delivered, mut dead) = (0, 0);
    for row in &rows {
        let (id, state): (String, String) = (row.get(0), row.get(1));
        match state.as_str() {
            "delivered" => {
                delivered += 1;
                if !acknowledged.contains_key(&id) {
                    check.failures.push(format!(
                        "outbox event {id} is delivered but the receiver never acknowledged it"
                    ));
                }
            }
            "dead" => dead += 1,
            _ => {}
        }
    }
    let repeated = acknowledged.values().filter(|count| **count > 1).count();
    if rows.is_empty() {
        check
            .failures
            .push("no outbox event was written (was completion exercised?)".into());
    }
    if pending > 0 {
        check.failures.push(format!(
            "{pending} outbox event(s) still pending {budget:?} after the load"
        ));
    }
    if dead > 0 {
        check
            .failures
            .push(format!("{dead} outbox event(s) dead-lettered"));
    }
    check.lines.push(format!(
        "outbox             {} events written, {delivered} delivered and acknowledged ({repeated} twice or more, same webhook-id), {dead} dead, {pending} pending after {runs} scheduled run(s)",
        rows.len()
    ));
    Ok(check)
}
