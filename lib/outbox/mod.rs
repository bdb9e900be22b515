//! The transactional outbox: what the rest of a product learns about a
//! user's onboarding, and its delivery.
//!
//! **Writing.** The wizard's operations call [`completed`], [`step_completed`]
//! and [`merged`] inside the transaction of the change they report, so the
//! event commits or rolls back with it. Only signed-in users' changes make
//! events (an anonymous visitor's steps reach the product through
//! `onboarding.merged` once they sign in). The body is the webhook's, built
//! here ([`Envelope`]); its `data.userId` is written by the database from the
//! transaction's context, never taken from the caller.
//!
//! **Delivering** ([`deliver`]): at least once, in order per user. A round
//! claims due events (each the oldest pending one of its user, `for update
//! skip locked`, leased for longer than one attempt can take), sends each to
//! every destination it has not reached yet, all at once, and records the
//! outcome: delivered, retried after an exponential backoff (honouring
//! `Retry-After`), or dead-lettered after `OUTBOX_MAX_ATTEMPTS`. A courier
//! killed midway leaves its events leased; when the lease ends they are due
//! again and the next courier sends them again with the same `webhook-id`.
//! Rounds start only while the time budget has room for a whole attempt,
//! so a run ends within its function's `maxDuration`.
//!
//! **When.** `GET /api/cron/deliver` (Vercel cron) drains what is due, and
//! each response that wrote an event starts one run after the response
//! (`wait_until`): [`noting_writes`] tells the HTTP layer that it did.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::outbox::{self, Claimed, NewEvent, Outcome};
use crate::db::progress::ProgressRecord;
use crate::db::{Database, DbError, Tx};
use crate::outbound::{Outbound, Outgoing, Sent};

/// Event types, as sent in `type`.
pub const COMPLETED: &str = "onboarding.completed";
pub const STEP_COMPLETED: &str = "onboarding.step_completed";
pub const MERGED: &str = "onboarding.merged";

/// Events one round claims at most.
pub const BATCH_SIZE: i32 = 50;
/// How long the scheduled run keeps starting rounds (`maxDuration` is 10 s).
pub const TIME_BUDGET: Duration = Duration::from_secs(8);
/// How long the run after a response keeps starting rounds: the response
/// has already used some of the function's time.
pub const AFTER_RESPONSE_BUDGET: Duration = Duration::from_secs(5);

/// The body of every webhook: Standard Webhooks' `type`, `timestamp`, `data`
/// (documented per type by [`CompletedEvent`], [`StepCompletedEvent`] and
/// [`MergedEvent`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// `onboarding.completed`, `onboarding.step_completed` or `onboarding.merged`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the change happened (RFC 3339); the same in every delivery.
    pub timestamp: DateTime<Utc>,
    pub data: T,
}

/// `onboarding.completed`: the user finished onboarding.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompletedData {
    /// The user's id at the identity provider (the token's user claim).
    #[serde(default)]
    pub user_id: String,
    pub flow_id: String,
    pub flow_version: i32,
    /// The organization the wizard created or filled in, if the flow has one.
    #[schema(required = true)]
    pub organization_id: Option<String>,
    pub completed_at: DateTime<Utc>,
}

/// `onboarding.step_completed`: a signed-in user completed a step (sent
/// when it becomes completed, not for every later save of it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepCompletedData {
    #[serde(default)]
    pub user_id: String,
    pub flow_id: String,
    pub flow_version: i32,
    pub step: String,
}

/// `onboarding.merged`: an anonymous session's drafts moved to the user
/// after sign-in (one event per flow that received answers).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MergedData {
    #[serde(default)]
    pub user_id: String,
    pub flow_id: String,
    /// Steps whose answer now comes from the session.
    pub from_session: Vec<String>,
    /// Steps where the account's own answer was kept.
    pub kept: Vec<String>,
}

macro_rules! documented_event {
    ($name:ident, $data:ty, $type:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
        pub struct $name {
            #[serde(rename = "type")]
            #[schema(pattern = $type)]
            pub event_type: String,
            /// When the change happened (RFC 3339); the same in every delivery.
            pub timestamp: DateTime<Utc>,
            pub data: $data,
        }
    };
}

documented_event!(
    CompletedEvent,
    CompletedData,
    "^onboarding\\.completed$",
    "The body of `onboarding.completed`."
);
documented_event!(
    StepCompletedEvent,
    StepCompletedData,
    "^onboarding\\.step_completed$",
    "The body of `onboarding.step_completed`."
);
documented_event!(
    MergedEvent,
    MergedData,
    "^onboarding\\.merged$",
    "The body of `onboarding.merged`."
);

tokio::task_local! {
    static WRITTEN: Arc<AtomicBool>;
}

/// Runs `work` and says whether it wrote an event (committed or not: a
/// run that finds nothing due costs one claim).
pub async fn noting_writes<F: Future>(work: F) -> (F::Output, bool) {
    let flag = Arc::new(AtomicBool::new(false));
    let output = WRITTEN.scope(flag.clone(), work).await;
    (output, flag.load(Ordering::Relaxed))
}

async fn enqueue<T: Serialize>(
    tx: &Tx<'_>,
    progress_id: uuid::Uuid,
    event_type: &str,
    data: T,
) -> Result<(), DbError> {
    let payload = serde_json::to_value(Envelope {
        event_type: event_type.to_string(),
        timestamp: Utc::now(),
        data,
    })
    .expect("events serialize");
    outbox::enqueue(
        tx,
        &NewEvent {
            // Time-ordered (UUIDv7): the `event_id` index takes it at its
            // right edge, as it does the identity key, instead of at a random
            // leaf that, first touched after a checkpoint, is written to the
            // WAL whole: inserts into a 500,000-row table wrote 2.4 KB of WAL
            // each with random ids, 0.6 KB with time-ordered ones.
            event_id: uuid::Uuid::now_v7(),
            progress_id,
            event_type,
            payload: &payload,
        },
    )
    .await?;
    let _ = WRITTEN.try_with(|flag| flag.store(true, Ordering::Relaxed));
    Ok(())
}

/// `onboarding.completed`, for the progress row just marked completed.
pub async fn completed(tx: &Tx<'_>, progress: &ProgressRecord) -> Result<(), DbError> {
    let data = CompletedData {
        user_id: String::new(),
        flow_id: progress.flow_id.clone(),
        flow_version: progress.flow_version,
        organization_id: progress.organization_id.clone(),
        completed_at: Utc::now(),
    };
    enqueue(tx, progress.id, COMPLETED, data).await
}

/// `onboarding.step_completed`, for a step that just became completed.
pub async fn step_completed(
    tx: &Tx<'_>,
    progress: &ProgressRecord,
    step: &str,
) -> Result<(), DbError> {
    if progress.user_id.is_none() {
        // An anonymous visitor's step: reported by `onboarding.merged`.
        return Ok(());
    }
    let data = StepCompletedData {
        user_id: String::new(),
        flow_id: progress.flow_id.clone(),
        flow_version: progress.flow_version,
        step: step.to_string(),
    };
    enqueue(tx, progress.id, STEP_COMPLETED, data).await
}

/// `onboarding.merged`, for a flow whose progress row (`progress`, now the
/// user's) received the session's answers. Nothing when none moved.
pub async fn merged(
    tx: &Tx<'_>,
    progress: &ProgressRecord,
    from_session: &[String],
    kept: &[String],
) -> Result<(), DbError> {
    if from_session.is_empty() {
        return Ok(());
    }
    let data = MergedData {
        user_id: String::new(),
        flow_id: progress.flow_id.clone(),
        from_session: from_session.to_vec(),
        kept: kept.to_vec(),
    };
    // The row may be the session's, adopted: it is the user's now.
    enqueue(tx, progress.id, MERGED, data).await
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeliveryReport)]
pub struct Delivered {
    /// Events every destination acknowledged.
    #[schema(minimum = 0)]
    pub delivered: u32,
    /// Events that failed somewhere and wait for their next attempt (backoff).
    #[schema(minimum = 0)]
    pub retried: u32,
    /// Events dead-lettered by this run (`OUTBOX_MAX_ATTEMPTS` reached).
    #[schema(minimum = 0)]
    pub dead: u32,
    /// `true`: nothing due is left. `false`: the run's time was up first;
    /// the next run continues.
    pub complete: bool,
}

/// How long an attempt's lease lasts: an attempt sends to every destination
/// at once, each call bounded by the timeout, so twice that and some margin
/// outlasts any attempt.
pub fn lease(outbound: &Outbound) -> Duration {
    outbound.settings().timeout * 2 + Duration::from_secs(5)
}

/// The wait before attempt `attempts + 1`: base × 2^(attempts-1), up to an
/// hour, ±20 % jitter, and never before the other side's `Retry-After`.
pub fn backoff(base: Duration, attempts: i32, retry_after: Option<Duration>) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let wait = base
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(Duration::from_secs(3_600));
    let jitter = f64::from(getrandom::u32().unwrap_or(0) % 401) / 1000.0 + 0.8;
    wait.mul_f64(jitter).max(retry_after.unwrap_or_default())
}

/// One attempt of one event to every destination it has not reached.
async fn attempt(outbound: &Outbound, event: &Claimed) -> (Vec<String>, Outcome) {
    let id = event.event_id.to_string();
    let outgoing = Outgoing {
        id: &id,
        user_id: &event.user_id,
        event_type: &event.event_type,
        payload: &event.payload,
    };
    let pending: Vec<_> = outbound
        .destinations(&event.event_type)
        .into_iter()
        .filter(|destination| !event.delivered_to.contains(&destination.key()))
        .collect();
    let results = join_all(
        pending
            .iter()
            .map(|destination| outbound.send(destination, outgoing)),
    )
    .await;
    let mut acknowledged = event.delivered_to.clone();
    let mut errors = Vec::new();
    let mut retry_after: Option<Duration> = None;
    for (destination, sent) in pending.iter().zip(results) {
        match sent {
            Sent::Acknowledged => acknowledged.push(destination.key()),
            Sent::Failed {
                error,
                retry_after: wait,
            } => {
                errors.push(format!("{}: {error}", destination.key()));
                retry_after = retry_after.max(wait);
            }
        }
    }
    let outcome = if errors.is_empty() {
        Outcome::Delivered
    } else {
        let error = errors.join("; ");
        tracing::warn!(
            event_id = %event.event_id,
            event_type = %event.event_type,
            attempts = event.attempts,
            %error,
            "an outbox event was not delivered"
        );
        if event.attempts >= outbound.settings().max_attempts {
            Outcome::Dead { error }
        } else {
            let wait = backoff(
                outbound.settings().backoff_base,
                event.attempts,
                retry_after,
            );
            Outcome::Retry {
                in_seconds: i32::try_from(wait.as_secs_f64().ceil() as u64)
                    .unwrap_or(i32::MAX)
                    .max(1),
                error,
            }
        }
    };
    (acknowledged, outcome)
}

/// Delivers due events, `batch_size` per round, for as long as `budget`
/// leaves room for a whole attempt (see the module docs).
pub async fn deliver(
    db: &Database,
    outbound: &Outbound,
    batch_size: i32,
    budget: Duration,
) -> Result<Delivered, DbError> {
    let started = Instant::now();
    let lease = lease(outbound);
    let lease_seconds = i32::try_from(lease.as_secs()).unwrap_or(3_600);
    // A round: a claim, calls bounded by the timeout, a settle.
    let attempt_time = outbound.settings().timeout + Duration::from_millis(500);
    let mut done = Delivered::default();
    while started.elapsed() + attempt_time <= budget {
        let claimed = db
            .as_login_role(async |tx| outbox::claim(tx, batch_size, lease_seconds).await)
            .await?;
        if claimed.is_empty() {
            done.complete = true;
            return Ok(done);
        }
        let outcomes = join_all(claimed.iter().map(|event| attempt(outbound, event))).await;
        let settled = db
            .as_login_role(async |tx| {
                let mut settled = Vec::with_capacity(outcomes.len());
                for (event, (acknowledged, outcome)) in claimed.iter().zip(&outcomes) {
                    settled.push(outbox::settle(tx, event.id, acknowledged, outcome).await?);
                }
                Ok::<_, DbError>(settled)
            })
            .await?;
        for ((_, outcome), still_pending) in outcomes.iter().zip(settled) {
            if !still_pending {
                continue;
            }
            match outcome {
                Outcome::Delivered => done.delivered += 1,
                Outcome::Retry { .. } => done.retried += 1,
                Outcome::Dead { .. } => done.dead += 1,
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour_and_waits_for_retry_after() {
        let base = Duration::from_secs(10);
        for (attempts, nominal) in [(1, 10.0), (2, 20.0), (3, 40.0), (30, 3_600.0)] {
            let wait = backoff(base, attempts, None).as_secs_f64();
            assert!(
                (nominal * 0.8..=nominal * 1.2).contains(&wait),
                "{attempts}: {wait}"
            );
        }
        assert_eq!(
            backoff(base, 1, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn an_envelope_is_type_timestamp_and_data() {
        let value = serde_json::to_value(Envelope {
            event_type: COMPLETED.into(),
            timestamp: DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
            data: StepCompletedData {
                user_id: "u".into(),
                flow_id: "default".into(),
                flow_version: 2,
                step: "profile".into(),
            },
        })
        .unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "type": "onboarding.completed",
                "timestamp": "2026-01-02T03:04:05Z",
                "data": {"userId": "u", "flowId": "default", "flowVersion": 2, "step": "profile"}
            })
        );
    }
}
