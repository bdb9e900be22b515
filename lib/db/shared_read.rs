//! One pooled connection that the reads sent as one call share.
//!
//! A read in one call ([`super::Statement::in_one_call`]) is a single
//! statement in an implicit transaction of its own, that sets the caller's
//! context and puts the previous one back; it leaves nothing on the
//! connection. So, unlike a transaction, it needs no connection to itself:
//! concurrent reads are sent on one connection, and tokio-postgres writes
//! them one behind another (pipelined) and routes each answer to its reader.
//! The server then finds the next read waiting when it finishes one instead
//! of going to sleep and being woken for it, and this process writes and
//! reads several at a time. Measured on the status miss (README: Benchmark):
//! about a third less PostgreSQL CPU per read and a fifth less in the
//! function.
//!
//! The connection is taken from the pool and goes back to it as soon as no
//! read is in flight on it, so an instance serving one request at a time
//! uses one connection as before, and the pool's idle and lifetime rules
//! apply to it as to any other. While reads keep it busy it stays shared
//! until it reaches the pool's maximum lifetime; then the next read takes a
//! fresh one. It is detached (closed) when it breaks, when a pooler shows
//! itself (statements are then unnamed, and the reads that queue up go as
//! one call instead: [`super::batched_read`]), or when a read on it is abandoned midway (its deadline passed),
//! as a transaction's connection is: the server may still be busy with it.
//! With a pool of one connection nothing is shared, so a transaction never
//! waits for a stream of reads to let go.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::DbError;

/// The connection the reads in flight share, if any.
pub(super) struct SharedRead {
    /// Weak, so the connection returns to the pool when its last read is done.
    slot: Mutex<Weak<Held>>,
}

/// A pooled connection held for shared reads: back to the pool when the
/// last read using it is done, or closed when it was retired.
struct Held {
    object: Option<deadpool_postgres::Object>,
    broken: AtomicBool,
}

impl SharedRead {
    pub(super) fn new() -> Self {
        Self {
            slot: Mutex::new(Weak::new()),
        }
    }

    /// The connection reads in flight share now, if it is younger than
    /// `max_lifetime`; an older one is shared no more and goes back to the
    /// pool (which closes it) when its reads are done.
    pub(super) fn current(&self, max_lifetime: Duration) -> Option<Reading<'_>> {
        let mut slot = self.lock();
        let held = slot.upgrade()?;
        if held.age() >= max_lifetime {
            *slot = Weak::new();
            return None;
        }
        Some(self.reading(held))
    }

    /// Shares `object`, unless another read got there first: then that one
    /// is shared and `object` goes back to the pool.
    pub(super) fn hold(&self, object: deadpool_postgres::Object) -> Reading<'_> {
        let mut slot = self.lock();
        if let Some(held) = slot.upgrade() {
            return self.reading(held);
        }
        let held = Arc::new(Held {
            object: Some(object),
            broken: AtomicBool::new(false),
        });
        *slot = Arc::downgrade(&held);
        self.reading(held)
    }

    fn reading(&self, held: Arc<Held>) -> Reading<'_> {
        Reading {
            shared: self,
            held,
            finished: false,
        }
    }

    /// Shares `held` no more and closes it once its last read is done.
    fn retire(&self, held: &Arc<Held>) {
        held.broken.store(true, Ordering::Relaxed);
        let mut slot = self.lock();
        if std::ptr::eq(slot.as_ptr(), Arc::as_ptr(held)) {
            *slot = Weak::new();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Weak<Held>> {
        // A panic while holding the lock leaves only a `Weak` behind: still valid.
        self.slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One read on the shared connection; dropped before [`Reading::finish`]
/// (abandoned midway), it retires the connection.
pub(super) struct Reading<'a> {
    shared: &'a SharedRead,
    held: Arc<Held>,
    finished: bool,
}

impl Reading<'_> {
    pub(super) fn client(&self) -> &deadpool_postgres::ClientWrapper {
        self.held.client()
    }

    /// The read's outcome; a connection that broke, or that a pooler
    /// disowned the statements of, is retired.
    pub(super) fn finish<T>(
        mut self,
        outcome: Result<T, tokio_postgres::Error>,
    ) -> Result<T, DbError> {
        self.finished = true;
        let outcome = outcome.map_err(DbError::from);
        if outcome.as_ref().is_err_and(DbError::spoils_connection) {
            self.shared.retire(&self.held);
        }
        outcome
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.retire(&self.held);
        }
    }
}

impl Held {
    fn client(&self) -> &deadpool_postgres::ClientWrapper {
        self.object
            .as_ref()
            .expect("the connection is present until drop")
    }

    fn age(&self) -> Duration {
        self.object.as_ref().map_or(Duration::ZERO, |object| {
            deadpool_postgres::Object::metrics(object).age()
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.broken.load(Ordering::Relaxed)
            && let Some(object) = self.object.take()
        {
            // Detached from the pool and dropped: the socket closes.
            drop(deadpool_postgres::Object::take(object));
        }
    }
}
