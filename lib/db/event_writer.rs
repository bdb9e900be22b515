//! The write-behind queue for funnel events.
//!
//! The events route answers 202 before the events are stored. What it
//! acknowledged must still reach the database when hundreds of requests arrive
//! at once, so writes are not one background task per request racing for the
//! pool: every accepted batch goes into one bounded queue, and one writer task
//! takes everything queued and stores it in one transaction and one round trip
//! ([`Database::one_trip_each`]), each batch under its own caller's Row Level
//! Security context. The more requests arrive, the larger each write, so the
//! writer keeps up with one connection.
//!
//! Backpressure instead of loss: when the queue is full the request waits for
//! room (up to [`ENQUEUE_TIMEOUT`]) and is then refused with 503, never
//! accepted and dropped. While the database is unreachable the writer retries
//! what it holds for up to [`RETRY_WINDOW`], and new batches are refused with
//! 503 so clients keep them and retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OnceCell, mpsc, oneshot};

use crate::db::{Database, DbError, RlsContext, events};

/// Batches the queue holds before a request has to wait (each is at most
/// `routes::events::MAX_EVENTS` events).
pub const QUEUE_CAPACITY: usize = 1024;
/// Events written in one transaction at most.
pub const MAX_EVENTS_PER_WRITE: usize = 2000;
/// How long a request waits for room in a full queue before its 503.
pub const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the writer retries a write the database could not take. Within
/// Vercel's `maxDuration` (10 s), so `wait_until` keeps the function alive
/// for the whole window.
pub const RETRY_WINDOW: Duration = Duration::from_secs(8);

/// One request's events, as the JSON array `db::events::INSERT_BATCH` reads.
struct Pending {
    context: RlsContext,
    events: serde_json::Value,
    count: usize,
    stored: oneshot::Sender<Result<usize, DbError>>,
}

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the event queue is full")]
    QueueFull,
    #[error("the database is unavailable")]
    DatabaseUnavailable,
}

/// A handle on the queue; cheap to clone. The writer task starts with the
/// first batch, on the runtime that serves requests.
#[derive(Clone)]
pub struct EventWriter {
    db: Database,
    queue: Arc<OnceCell<mpsc::Sender<Pending>>>,
    retrying: Arc<AtomicBool>,
    /// Events acknowledged, then refused by the database or held past the
    /// retry window: each loss is logged with its count, and counted here.
    lost: Arc<AtomicU64>,
}

/// Resolves when the batch is stored (or, after the retry window, known lost).
pub struct Receipt(oneshot::Receiver<Result<usize, DbError>>);

impl Receipt {
    /// The number of events stored.
    pub async fn stored(self) -> Result<usize, DbError> {
        self.0
            .await
            .unwrap_or_else(|_| Err(DbError::Unavailable("the event writer stopped".into())))
    }
}

impl EventWriter {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            queue: Arc::new(OnceCell::new()),
            retrying: Arc::new(AtomicBool::new(false)),
            lost: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Events this process acknowledged and could not store.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Queues a caller's events. `Ok` means the writer holds them; await the
    /// receipt to know they are stored.
    pub async fn enqueue(
        &self,
        context: RlsContext,
        events: serde_json::Value,
        count: usize,
    ) -> Result<Receipt, Refused> {
        if self.retrying.load(Ordering::Acquire) {
            return Err(Refused::DatabaseUnavailable);
        }
        let queue = self
            .queue
            .get_or_init(|| async { self.start_writer() })
            .await;
        let (stored, receipt) = oneshot::channel();
        let pending = Pending {
            context,
            events,
            count,
            stored,
        };
        queue
            .send_timeout(pending, ENQUEUE_TIMEOUT)
            .await
            .map_err(|_| Refused::QueueFull)?;
        Ok(Receipt(receipt))
    }

    fn start_writer(&self) -> mpsc::Sender<Pending> {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_until_closed(
            self.db.clone(),
            receiver,
            self.retrying.clone(),
            self.lost.clone(),
        ));
        sender
    }
}

async fn write_until_closed(
    db: Database,
    mut queue: mpsc::Receiver<Pending>,
    retrying: Arc<AtomicBool>,
    lost: Arc<AtomicU64>,
) {
    let mut group = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut events = first.count;
        group.push(first);
        while events < MAX_EVENTS_PER_WRITE {
            match queue.try_recv() {
                Ok(next) => {
                    events += next.count;
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        write_group(&db, &mut group, &retrying, &lost).await;
    }
}

/// Stores a group, retrying while the database is unavailable; answers every
/// receipt and leaves `group` empty.
async fn write_group(
    db: &Database,
    group: &mut Vec<Pending>,
    retrying: &AtomicBool,
    lost: &AtomicU64,
) {
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(50);
    let outcome = loop {
        match write_together(db, group).await {
            Err(DbError::Unavailable(cause)) if started.elapsed() < RETRY_WINDOW => {
                retrying.store(true, Ordering::Release);
                tracing::warn!(error = %cause, batches = group.len(), "event write deferred: database unavailable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            outcome => break outcome,
        }
    };
    retrying.store(false, Ordering::Release);
    match outcome {
        Ok(counts) => {
            for (pending, count) in group.drain(..).zip(counts) {
                let _ = pending.stored.send(Ok(count));
            }
        }
        // One batch the database refuses must not take the others with it:
        // they are written one by one, and only the refused one fails.
        Err(DbError::Query(_)) if group.len() > 1 => {
            for pending in group.drain(..) {
                let outcome = events::insert_batch(db, &pending.context, &pending.events).await;
                if let Err(error) = &outcome {
                    tracing::error!(%error, events = pending.count, "analytics events not stored");
                    lost.fetch_add(pending.count as u64, Ordering::Relaxed);
                }
                let _ = pending.stored.send(outcome);
            }
        }
        Err(error) => {
            let message = error.to_string();
            let count: usize = group.iter().map(|pending| pending.count).sum();
            tracing::error!(error = %message, events = count, "analytics events not stored");
            lost.fetch_add(count as u64, Ordering::Relaxed);
            let mut first = Some(error);
            for pending in group.drain(..) {
                let error = first
                    .take()
                    .unwrap_or_else(|| DbError::Unavailable(message.clone()));
                let _ = pending.stored.send(Err(error));
            }
        }
    }
}

async fn write_together(db: &Database, group: &[Pending]) -> Result<Vec<usize>, DbError> {
    let items: Vec<(&RlsContext, &serde_json::Value)> = group
        .iter()
        .map(|pending| (&pending.context, &pending.events))
        .collect();
    events::insert_batches(db, &items).await
}
