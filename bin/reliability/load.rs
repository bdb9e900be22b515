//! What the simulated users share while the load runs: the client they send
//! with, the deadline, and the record of everything they saw (counters, 5xx
//! answers, transport errors, problems), which the fault accounting and the
//! report judge afterwards.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// One request's outcome, kept for the outage accounting.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub saves_acknowledged: AtomicU64,
    pub replays: AtomicU64,
    pub simulated_timeouts: AtomicU64,
    pub retries: AtomicU64,
    pub stale_412: AtomicU64,
    pub refresh_412: AtomicU64,
    pub given_up: AtomicU64,
    pub status_reads: AtomicU64,
    pub events: AtomicU64,
    /// Events the server acknowledged with 202 (the sum of `accepted`).
    pub events_acknowledged: AtomicU64,
    /// AI suggestions made, and answered "unavailable" (the provider down).
    pub ai_suggested: AtomicU64,
    pub ai_unavailable: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct ServerError {
    pub at: Instant,
    pub status: u16,
    pub retry_after: bool,
    pub what: String,
}

/// Failures the summary lists; any one fails the run.
#[derive(Default)]
pub struct Log {
    pub server_errors: Vec<ServerError>,
    pub problems: Vec<String>,
    pub transport_errors: Vec<(Instant, String)>,
    pub first_save_after: Vec<Instant>,
}

pub struct Shared {
    pub base: String,
    pub client: reqwest::Client,
    pub counters: Counters,
    pub log: Mutex<Log>,
    pub deadline: Instant,
    /// Set once PostgreSQL accepts connections again after its restart.
    pub pg_back: Mutex<Option<Instant>>,
    pub run_id: String,
    pub ai_mode: Arc<AtomicU8>,
    /// How the outbox's webhook receiver answers (`webhooks::RECEIVER_*`).
    pub receiver_mode: Arc<AtomicU8>,
}

impl Shared {
    pub fn problem(&self, text: String) {
        let mut log = self.log.lock().unwrap();
        if log.problems.len() < 1000 {
            log.problems.push(text);
        }
    }

    fn server_error(&self, status: u16, retry_after: bool, what: &str) {
        self.log.lock().unwrap().server_errors.push(ServerError {
            at: Instant::now(),
            status,
            retry_after,
            what: what.to_string(),
        });
    }

    pub fn transport_error(&self, what: String) {
        self.log
            .lock()
            .unwrap()
            .transport_errors
            .push((Instant::now(), what));
    }

    /// Sends a request; 5xx answers and transport errors (also those that
    /// cut the body off after the status line) are recorded.
    pub async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Option<(StatusCode, HeaderMap, Vec<u8>)> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = match request.send().await {
            Ok(response) => self.receive(what, response).await,
            Err(error) => Err(error),
        };
        outcome
            .map_err(|error| self.transport_error(format!("{what}: {error}")))
            .ok()
    }

    /// Reads a whole answer; a 5xx answer is recorded. A body that does not
    /// arrive in full (a timeout or a reset after the headers) is an error,
    /// never an empty body.
    pub async fn receive(
        &self,
        what: &str,
        response: reqwest::Response,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), reqwest::Error> {
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_server_error() {
            self.server_error(status.as_u16(), headers.contains_key("retry-after"), what);
        }
        let body = response.bytes().await?.to_vec();
        Ok((status, headers, body))
    }
}
