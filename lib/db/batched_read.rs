//! The reads in one call that queue up go together, as one statement.
//!
//! The status read and a step's read are one call each of a function that
//! sets the caller's context itself and leaves nothing on the connection
//! ([`super::Statement::each_in_one_call`]). Such reads need no connection
//! to themselves, and, when several are in flight in one instance, no
//! statement to themselves either: a read that finds fewer batches in flight
//! than the pool has connections goes at once, alone; the reads that arrive
//! while those are being answered wait, and the first batch to finish takes
//! all of them (up to [`MAX_READS_PER_CALL`]) as one call of a function that
//! runs each read in turn under its own caller's role and claims and tags
//! each row with the read's position
//! (`migrations/V20261202000200__reads_each_in_one_call.sql`). Row Level
//! Security checks every read as its own caller, as in a call for one read.
//! A read waits for no timer: with no queue there is no batch.
//!
//! One statement, one exchange and one wake-up of the server's backend for
//! the whole queue, on a direct connection (named statements) and behind a
//! transaction-mode pooler (unnamed statements, parsed and planned by the
//! server on every call) alike. Pipelining the calls on one shared
//! connection instead, as this module's predecessor did, is not possible
//! behind such a pooler, which may give the server connection to another
//! client at the end of each implicit transaction, and on a direct
//! connection it cost the function a quarter more CPU per read than this
//! (README: Benchmark).
//!
//! A batch runs in a task of its own, bounded by the query timeout, so a
//! reader that gives up (its own deadline, a client that went away) does
//! not take the others' answers with it, and a reader that gave up while it
//! waited is left out. Each call takes a connection from the pool and gives
//! it back, so transactions waiting for one get their turn between calls,
//! and a connection that broke, or is still busy with a call past its
//! deadline, is closed instead.

use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::tx::{Checkout, query_in_mode};
use super::{Database, DbError, RlsContext, StatementMode};

/// The most reads one call carries; more wait for the next call.
const MAX_READS_PER_CALL: usize = 64;

/// A function that runs one statement's read for several callers: its
/// parameters are the roles, the claims and then the statement's own, each
/// an array with one element per read (all `TEXT[]`), and its first
/// column, `ord`, is the 1-based position of the read a row answers.
#[derive(Debug, Clone, Copy)]
pub(super) struct EachCall {
    pub(super) sql: &'static str,
    /// The statement's own parameters, one array each, after roles and claims.
    pub(super) arguments: usize,
}

/// One read waiting for its batch.
struct Waiting {
    call: EachCall,
    role: &'static str,
    claims: String,
    arguments: Vec<String>,
    answer: oneshot::Sender<Result<Vec<Row>, DbError>>,
}

/// The reads waiting and the batches in flight.
pub(super) struct Batches {
    queue: Mutex<Queue>,
    /// Batches in flight at most: the pool's size.
    limit: usize,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    in_flight: usize,
}

impl Batches {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            queue: Mutex::default(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a read and, when fewer batches are in flight than the limit,
    /// starts one with everything queued.
    pub(super) fn submit(
        db: &Database,
        call: EachCall,
        context: &RlsContext,
        arguments: &[&str],
    ) -> oneshot::Receiver<Result<Vec<Row>, DbError>> {
        debug_assert_eq!(
            arguments.len(),
            call.arguments,
            "arguments of `{}`",
            call.sql
        );
        let (answer, answered) = oneshot::channel();
        let batches = &db.batches;
        let mut queue = batches.lock();
        queue.waiting.push(Waiting {
            call,
            role: context.role.as_str(),
            claims: context.claims.clone(),
            arguments: arguments
                .iter()
                .map(|argument| (*argument).to_owned())
                .collect(),
            answer,
        });
        if queue.in_flight < batches.limit {
            queue.in_flight += 1;
            let first = take_batch(&mut queue.waiting);
            drop(queue);
            let flight = InFlight {
                db: db.clone(),
                counted: true,
            };
            // Boxed before it is spawned: the task's state (about 2.5 KB,
            // the pool checkout's and the query's futures) is then written
            // once, into the box, where the spawn would copy it by value at
            // each of its layers and into the task.
            tokio::spawn(Box::pin(flight.run(first)));
        }
        answered
    }
}

/// Up to [`MAX_READS_PER_CALL`] of the oldest reads waiting.
fn take_batch(waiting: &mut Vec<Waiting>) -> Vec<Waiting> {
    let rest = waiting.split_off(waiting.len().min(MAX_READS_PER_CALL));
    std::mem::replace(waiting, rest)
}

/// A batch in flight. Counted out of the queue when dropped unless
/// [`InFlight::run`] did it, so a task that panicked leaves its place.
struct InFlight {
    db: Database,
    counted: bool,
}

impl InFlight {
    /// Sends `batch`, then whatever queued meanwhile, until nothing waits.
    async fn run(mut self, mut batch: Vec<Waiting>) {
        loop {
            self.send(batch).await;
            let mut queue = self.db.batches.lock();
            if queue.waiting.is_empty() {
                // Under the lock that `submit` takes: a read queued from now
                // on finds a place free and starts a batch itself.
                queue.in_flight -= 1;
                drop(queue);
                self.counted = false;
                return;
            }
            batch = take_batch(&mut queue.waiting);
        }
    }

    /// One call per function among `batch`'s reads (a status read and a
    /// step's read queued together make two), one after the other.
    async fn send(&self, mut batch: Vec<Waiting>) {
        batch.retain(|read| !read.answer.is_closed());
        let db = &self.db;
        while let Some(call) = batch.first().map(|read| read.call) {
            let reads: Vec<Waiting>;
            (reads, batch) = batch
                .into_iter()
                .partition(|read| read.call.sql == call.sql);
            let rows = db
                .within_deadline(call_for_each(db, &call, &reads))
                .await
                .unwrap_or_else(Err);
            match rows {
                Ok(rows) => answer_each(reads, rows),
                Err(error) => answer_all(reads, &error),
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.counted {
            self.db.batches.lock().in_flight -= 1;
        }
    }
}

/// The call for `reads` in the statement mode of the moment; were a named
/// statement missing (a pooler nobody announced), nothing ran, and it is
/// sent again unnamed, as [`Database::one_trip`] does.
async fn call_for_each(
    db: &Database,
    call: &EachCall,
    reads: &[Waiting],
) -> Result<Vec<Row>, DbError> {
    db.unnamed_if_disowned(|mode| call_once(db, mode, call, reads))
        .await
}

/// The call on a pooled connection: the roles, the claims and each argument
/// as arrays. The connection goes back to the pool unless the call spoiled
/// it, or is closed if this is dropped midway.
async fn call_once(
    db: &Database,
    mode: StatementMode,
    call: &EachCall,
    reads: &[Waiting],
) -> Result<Vec<Row>, DbError> {
    let roles: Vec<&str> = reads.iter().map(|read| read.role).collect();
    let claims: Vec<&str> = reads.iter().map(|read| read.claims.as_str()).collect();
    let arguments: Vec<Vec<&str>> = (0..call.arguments)
        .map(|index| {
            reads
                .iter()
                .map(|read| read.arguments[index].as_str())
                .collect()
        })
        .collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&roles, &claims];
    params.extend(arguments.iter().map(|column| column as &(dyn ToSql + Sync)));
    let types = vec![Type::TEXT_ARRAY; params.len()];
    let mut checkout = Checkout::new(db.checkout().await?);
    let rows = query_in_mode(checkout.client(), mode, call.sql, &types, &params).await;
    checkout.settle(rows)
}

/// Each read's rows, by the position the function tagged them with.
fn answer_each(reads: Vec<Waiting>, rows: Vec<Row>) {
    let mut answers: Vec<Vec<Row>> = reads.iter().map(|_| Vec::new()).collect();
    let mut misplaced = 0;
    for row in rows {
        let position = row
            .try_get::<_, i32>("ord")
            .ok()
            .and_then(|ord| usize::try_from(ord).ok()?.checked_sub(1));
        match position.and_then(|index| answers.get_mut(index)) {
            Some(answer) => answer.push(row),
            None => misplaced += 1,
        }
    }
    if misplaced > 0 {
        // Never a reader's: a row without its place goes to nobody.
        tracing::error!(
            misplaced,
            "rows of a batched read carried no valid position"
        );
        return answer_all(reads, &DbError::MissingRow("ord of a batched read"));
    }
    for (read, rows) in reads.into_iter().zip(answers) {
        // A reader that gave up no longer listens.
        let _ = read.answer.send(Ok(rows));
    }
}

fn answer_all(reads: Vec<Waiting>, error: &DbError) {
    for read in reads {
        let _ = read.answer.send(Err(error.clone()));
    }
}
