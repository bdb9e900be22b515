//! Data access: every statement runs inside a transaction that carries the
//! caller's Row Level Security context.
//!
//! A request context opens a transaction in which `set_config('role', ...)` and
//! `set_config('request.jwt.claims', ...)` are set locally, so the database, not
//! this code, decides which rows the caller reaches. The statements of a
//! typical read (BEGIN, the `set_config` calls, the query, COMMIT) are written
//! to the socket together and answered together: one network round trip
//! ([`Database::one_trip`]). tokio-postgres pipelines requests that are polled
//! concurrently; the order of the writes is the order in which the futures are
//! first polled, which `futures_util::future::join*` makes deterministic.
//! The two reads every navigation makes go further: each is one call of a
//! function that sets the context itself, and the ones that queue up in an
//! instance go together as one call ([`Statement::each_in_one_call`],
//! `batched_read`).

/// SQL: the `onboarding.progress` row (under `$alias`, e.g. `"p."` or `""`)
/// belongs to the caller: theirs when signed in, else their session's. Row
/// Level Security already hides other callers' rows; this picks the caller's
/// own one among those visible to them (a user merging a session sees both).
macro_rules! caller_owns_progress {
    ($alias:literal) => {
        concat!(
            "(",
            $alias,
            "user_id = (select onboarding.current_user_id()) or (",
            $alias,
            "session_id = (select onboarding.current_session_id()) and (select onboarding.current_user_id()) is null))"
        )
    };
}

/// Declares a struct (its attributes, derives and doc comments pass through)
/// with `fn from_row(&Row) -> Self`, which reads each field from the column of
/// its name: the field list is the one place on this side where a column is
/// named, so a struct and its mapping cannot drift apart. A column the
/// statement does not select, or of another type, panics as `Row::get` does: a
/// bug the first test that reads the row meets.
macro_rules! row_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty),*
        }

        impl $name {
            /// Reads each field from the row's column of the same name.
            fn from_row(row: &tokio_postgres::Row) -> Self {
                Self {
                    $($field: row.get(stringify!($field))),*
                }
            }
        }
    };
}

pub mod answers;
mod batched_read;
mod connect;
mod context;
pub mod domain;
pub mod erasure;
mod error;
pub mod event_writer;
pub mod events;
pub mod funnel;
pub mod idempotency;
pub mod migrate;
pub mod outbox;
pub mod progress;
pub mod retention;
pub mod sessions;
mod tls;
mod tx;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Pool, PoolError};
use futures_util::future::{join, join_all, join3};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use crate::monitoring::{Dependency, Timer};

use batched_read::{Batches, EachCall};
pub use connect::{
    DatabaseSettings, LOCAL_DATABASE_URL, LOCAL_MIGRATION_DATABASE_URL, PgTarget, PoolLifecycle,
    StatementMode, parse_pg_url,
};
pub use context::{DbRole, RlsContext};
pub use error::DbError;
use error::with_causes;
pub use tls::{LibpqTls, RootSources, SslMode};
pub use tx::Tx;
use tx::{Checkout, Framing, noting_evidence, typed_params};

/// A statement and the types of its parameters.
///
/// Declaring the types lets the same statement run as a cached named prepared
/// statement on a direct connection, or as an unnamed one behind a pooler,
/// without an extra round trip to ask the server for them.
#[derive(Debug)]
pub struct Statement {
    sql: &'static str,
    types: &'static [Type],
    /// The same read, for one caller or several, as one call that sets
    /// each caller's context itself (see [`Statement::each_in_one_call`]).
    each: Option<EachCall>,
    /// The same statement as a call, sent with unnamed statements (see
    /// [`Statement::when_unnamed`]).
    unnamed: Option<&'static str>,
}

impl Statement {
    pub const fn new(sql: &'static str, types: &'static [Type]) -> Self {
        Self {
            sql,
            types,
            each: None,
            unnamed: None,
        }
    }

    /// With unnamed statements (behind a transaction-mode pooler), `call`
    /// is sent instead: one call of a PL/pgSQL function that runs this
    /// statement, with the same parameters in the same order and the same
    /// columns out, whose plan the server keeps per connection. The server
    /// then plans only the call on each request, not the statement with its
    /// Row Level Security policies, which cost a save several times its
    /// execution (`migrations/V20261203000200__writes_planned_once.sql`).
    /// With prepared statements the statement itself is sent: its plan is
    /// kept already, and without a function call in between.
    pub const fn when_unnamed(self, call: &'static str) -> Self {
        Self {
            unnamed: Some(call),
            ..self
        }
    }

    /// The text sent in `mode`.
    pub(crate) fn text_in(&self, mode: StatementMode) -> &'static str {
        match (mode, self.unnamed) {
            (StatementMode::Unnamed, Some(call)) => call,
            _ => self.sql,
        }
    }

    /// The call sent with unnamed statements, when there is one
    /// ([`Statement::when_unnamed`]).
    pub fn unnamed_sql(&self) -> Option<&'static str> {
        self.unnamed
    }

    /// Reads of their own ([`Database::read_own`]) send `call` instead of
    /// BEGIN, the context, the statement and COMMIT: one protocol exchange
    /// instead of four, each of which the server answers with its own write
    /// and this client parses, and, behind a pooler (unnamed statements),
    /// one statement to plan instead of four, the query inside being planned
    /// once per server connection by PL/pgSQL. The reads of this statement
    /// that queue up in one instance go as one call (`batched_read`).
    /// `call` takes the roles, the claims and then the statement's
    /// `arguments` parameters, each as a `TEXT[]` with one element per read;
    /// it runs each read under its caller's role (it is `SECURITY INVOKER`
    /// and switches to the role itself) and claims with the same policies,
    /// sets the ones before it back, and returns the statement's columns
    /// after an `ord` column, the 1-based position of the read a row answers.
    pub const fn each_in_one_call(self, call: &'static str, arguments: usize) -> Self {
        Self {
            each: Some(EachCall {
                sql: call,
                arguments,
            }),
            ..self
        }
    }

    /// The text sent inside a transaction.
    pub fn sql(&self) -> &'static str {
        self.sql
    }

    /// The call sent for reads of their own, when there is one
    /// ([`Statement::each_in_one_call`]).
    pub fn each_sql(&self) -> Option<&'static str> {
        self.each.as_ref().map(|call| call.sql)
    }
}

// Public so the benchmark (bin/bench) replays exactly what a request sends.
/// Opens every request's transaction.
pub const BEGIN: &str = "begin";
/// Ends every successful transaction.
pub const COMMIT: &str = "commit";
const ROLLBACK: &str = "rollback";
/// Publishes the caller's role and claims for the transaction, and bounds
/// each of its statements on the server (parameters: role, claims JSON,
/// `statement_timeout`): a statement whose function was stopped midway
/// still ends, and releases its locks, by the request's deadline.
///
/// It also makes the transaction's cached plans generic. By default
/// PostgreSQL plans a prepared statement with parameters anew for each
/// execution as long as it estimates a plan for the values to be cheaper.
/// On a database of 20,000 users it kept doing so for the status read,
/// which then cost about a third more than with its plan reused (pgbench,
/// 2 clients); on the benchmark's 100,000 it chose the generic plan itself.
/// The plans PL/pgSQL keeps follow the same setting, which the functions
/// behind [`Statement::each_in_one_call`] set themselves.
pub const SET_CONTEXT: &str = "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true), set_config('statement_timeout', $3, true), set_config('plan_cache_mode', 'force_generic_plan', true)";

/// The application's connection pool and statement mode, built once per process.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    /// Set once a pooler proved that named statements do not survive between
    /// transactions (see [`Database::statement_mode`]).
    unnamed_by_evidence: Arc<AtomicBool>,
    configured_mode: StatementMode,
    lifecycle: PoolLifecycle,
    /// The longest one transaction (checkout included) may take.
    query_timeout: Duration,
    /// The same bound for each statement on the server, in milliseconds.
    statement_timeout: Arc<str>,
    /// When the pool was last swept, in milliseconds since `epoch`.
    swept_at_ms: Arc<AtomicU64>,
    epoch: std::time::Instant,
    sweeper_started: Arc<AtomicBool>,
    /// The reads in one call that wait to go together (see [`batched_read`]).
    batches: Arc<Batches>,
}

/// How often, at most, idle connections are looked over.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl Database {
    pub fn new(settings: &DatabaseSettings) -> Result<Self, String> {
        let pool = settings.pool()?;
        Ok(Self {
            batches: Arc::new(Batches::new(pool.status().max_size)),
            pool,
            unnamed_by_evidence: Arc::new(AtomicBool::new(false)),
            configured_mode: settings.statement_mode(),
            lifecycle: settings.lifecycle(),
            query_timeout: settings.query_timeout(),
            statement_timeout: settings.statement_timeout().as_millis().to_string().into(),
            swept_at_ms: Arc::new(AtomicU64::new(0)),
            epoch: std::time::Instant::now(),
            sweeper_started: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A pooled connection, after closing the idle ones past their idle
    /// timeout or lifetime (at most once per [`SWEEP_INTERVAL`]). Swept on
    /// checkout, since a serverless instance is frozen between invocations
    /// and its first request after a pause is when it can give stale
    /// connections back; and, while the process runs, by a task every
    /// [`SWEEP_INTERVAL`], so an instance at rest gives them back too.
    async fn checkout(&self) -> Result<deadpool_postgres::Object, PoolError> {
        self.sweep();
        if !self.sweeper_started.swap(true, Ordering::Relaxed) {
            let db = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SWEEP_INTERVAL).await;
                    db.sweep();
                }
            });
        }
        self.pool.get().await
    }

    /// Closes the idle connections past their idle timeout or lifetime.
    pub fn sweep(&self) {
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.swept_at_ms.load(Ordering::Relaxed);
        let interval = u64::try_from(SWEEP_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(last) < interval
            || self
                .swept_at_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let PoolLifecycle {
            idle_timeout,
            max_lifetime,
        } = self.lifecycle;
        let closed = self
            .pool
            .retain(|_, metrics| metrics.last_used() < idle_timeout && metrics.age() < max_lifetime)
            .removed
            .len();
        if closed > 0 {
            tracing::debug!(closed, "closed idle database connections");
        }
    }

    /// Connections open now (idle or in use), for tests and health.
    pub fn open_connections(&self) -> usize {
        self.pool.status().size
    }

    /// The mode statements are sent in now: the configured one, until a
    /// server answers that a named statement prepared on this connection
    /// does not exist, or already exists. That is a transaction-mode pooler
    /// nobody announced (PgBouncer on its own port, say), which hands each
    /// transaction another server connection; from then on this process
    /// sends unnamed statements only.
    pub fn statement_mode(&self) -> StatementMode {
        if self.unnamed_by_evidence.load(Ordering::Relaxed) {
            StatementMode::Unnamed
        } else {
            self.configured_mode
        }
    }

    /// Whether the mode was switched to unnamed by a pooler's answers.
    pub fn pooler_detected(&self) -> bool {
        self.unnamed_by_evidence.load(Ordering::Relaxed)
    }

    /// Switches to unnamed statements for good when `evidence` is the
    /// pooler's kind of error and statements were named; says whether the
    /// failed work may run again. It may: BEGIN is never a named statement
    /// ([`Framing`]), so the failed statement was inside the transaction,
    /// aborted it, and nothing of it was committed.
    fn retry_unnamed(&self, mode: StatementMode, evidence: bool) -> bool {
        if !evidence || mode != StatementMode::Prepared {
            return false;
        }
        if !self.unnamed_by_evidence.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "a named prepared statement was missing on the server (or already there): \
                 a transaction-mode pooler is in between; sending unnamed statements from now on \
                 (set DATABASE_STATEMENT_MODE=unnamed or add pgbouncer=true to DATABASE_URL to \
                 start that way)"
            );
        }
        true
    }

    /// Runs one statement in its own transaction, in one network round trip:
    /// BEGIN, the context, the statement and COMMIT are written together.
    #[tracing::instrument(level = "debug", skip_all, fields(db.statement = stmt.sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ")))]
    pub async fn one_trip(
        &self,
        context: &RlsContext,
        stmt: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let mut results = self.one_trip_each(stmt, &[(context, params)]).await?;
        Ok(results.pop().unwrap_or_default())
    }

    /// Runs one statement per context, all in one transaction and one
    /// network round trip: BEGIN, then for each item its context and its
    /// statement, then COMMIT. Each statement sees only its own context, so
    /// Row Level Security checks every item as its own caller; callers that
    /// queue up behind one connection are written together. All items commit
    /// or none does.
    pub async fn one_trip_each(
        &self,
        stmt: &Statement,
        items: &[(&RlsContext, &[&(dyn ToSql + Sync)])],
    ) -> Result<Vec<Vec<Row>>, DbError> {
        let attempts = self.unnamed_if_disowned(|mode| self.framed_unbounded(mode, stmt, items));
        self.within_deadline(attempts).await.unwrap_or_else(Err)
    }

    /// `work` in the statement mode of the moment, and once more unnamed
    /// when it failed because a pooler disowned its named statement
    /// ([`Database::retry_unnamed`]).
    async fn unnamed_if_disowned<T, F: Future<Output = Result<T, DbError>>>(
        &self,
        work: impl Fn(StatementMode) -> F,
    ) -> Result<T, DbError> {
        let mode = self.statement_mode();
        match work(mode).await {
            Err(error) if self.retry_unnamed(mode, error.pooler_evidence()) => {
                work(StatementMode::Unnamed).await
            }
            outcome => outcome,
        }
    }

    /// The caller's own rows by a read whose arguments are all text: as one
    /// call for the statements that have one, together with the other reads
    /// queued meanwhile ([`Statement::each_in_one_call`], `batched_read`),
    /// or else as [`Database::one_trip`].
    pub async fn read_own(
        &self,
        context: &RlsContext,
        stmt: &Statement,
        arguments: &[&str],
    ) -> Result<Vec<Row>, DbError> {
        if let Some(call) = stmt.each {
            let _timer = Timer::start(Dependency::Database);
            let answered = Batches::submit(self, call, context, arguments);
            return self.within_deadline(answered).await?.unwrap_or_else(|_| {
                Err(DbError::Unavailable(
                    "the read's batch ended without answering it".into(),
                ))
            });
        }
        let params: Vec<&(dyn ToSql + Sync)> = arguments
            .iter()
            .map(|argument| argument as &(dyn ToSql + Sync))
            .collect();
        // Boxed: inline, this rarely taken path's state (about 5 KB) made
        // every read's future that large, and every future that awaits one,
        // up to the route's, which axum moves into a box on each request.
        Box::pin(self.one_trip(context, stmt, &params)).await
    }

    /// BEGIN, each item's context and statement, and COMMIT, pipelined.
    async fn framed_unbounded(
        &self,
        mode: StatementMode,
        stmt: &Statement,
        items: &[(&RlsContext, &[&(dyn ToSql + Sync)])],
    ) -> Result<Vec<Vec<Row>>, DbError> {
        let _timer = Timer::start(Dependency::Database);
        let mut checkout = Checkout::new(self.checkout().await?);
        let client = checkout.client();
        // A prepared statement is looked up (or, once per connection, prepared)
        // before the pipeline, so every request of the pipeline is written on
        // its first poll and none waits for another's answer.
        let body_statement = async {
            match mode {
                StatementMode::Prepared => client
                    .prepare_typed_cached(stmt.sql, stmt.types)
                    .await
                    .map(Some),
                StatementMode::Unnamed => Ok(None),
            }
        };
        // Prepared together: a new connection prepares all four in one turn.
        let (framing, prepared) = join(
            Framing::new(client, mode, &self.statement_timeout),
            body_statement,
        )
        .await;
        let (framing, prepared) = (framing?, prepared?);
        let writes = items.iter().map(|(context, params)| {
            let (framing, prepared) = (&framing, &prepared);
            async move {
                let body = async {
                    match prepared {
                        Some(statement) => client.query(statement, params).await,
                        None => {
                            client
                                .query_typed(stmt.sql, &typed_params(stmt.sql, stmt.types, params))
                                .await
                        }
                    }
                };
                let (context_set, rows) = join(
                    framing.set_context(context.role.as_str(), &context.claims),
                    body,
                )
                .await;
                context_set.and(rows)
            }
        });
        let (begun, results, committed) =
            join3(framing.begin(), join_all(writes), framing.commit()).await;
        // A failed statement aborts the transaction and the COMMIT behind it
        // becomes a ROLLBACK, so the connection is idle again either way.
        let outcome = begun.and_then(|_| {
            let rows = results.into_iter().collect::<Result<Vec<_>, _>>()?;
            committed.map(|_| rows)
        });
        checkout.settle(outcome)
    }

    /// Runs `body` in a transaction that carries `context`. BEGIN and the
    /// context are pipelined with the body's first statement; COMMIT follows
    /// the body, or ROLLBACK when it fails.
    ///
    /// If the returned future is dropped midway (the client went away), the
    /// connection is closed instead of being returned to the pool, so no
    /// half-finished transaction is ever handed to another request.
    pub async fn transaction<T, E>(
        &self,
        context: &RlsContext,
        body: impl AsyncFnOnce(&Tx<'_>) -> Result<T, E> + Clone,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.transaction_as(context.role.as_str(), &context.claims, body)
            .await
    }

    /// Runs `body` in a transaction as the login role itself (`onboarding_app`),
    /// with no caller: it holds no privilege on any table, only on what is
    /// granted to the login role alone, the retention functions
    /// ([`retention`]), which no request's switched role may execute.
    /// Otherwise as [`Database::transaction`].
    pub async fn as_login_role<T, E>(
        &self,
        body: impl AsyncFnOnce(&Tx<'_>) -> Result<T, E> + Clone,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        // `none` resets the role to the session's (login) role, as `set role none` does.
        self.transaction_as("none", "{}", body).await
    }

    async fn transaction_as<T, E>(
        &self,
        role: &str,
        claims: &str,
        body: impl AsyncFnOnce(&Tx<'_>) -> Result<T, E> + Clone,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let attempts = async {
            let mode = self.statement_mode();
            let (outcome, evidence) = self
                .transaction_unbounded(mode, role, claims, body.clone())
                .await;
            if outcome.is_err() && self.retry_unnamed(mode, evidence) {
                self.transaction_unbounded(StatementMode::Unnamed, role, claims, body)
                    .await
                    .0
            } else {
                outcome
            }
        };
        self.within_deadline(attempts)
            .await
            .unwrap_or_else(|late| Err(E::from(late)))
    }

    /// `work`, or the error of a database that did not answer within
    /// `DATABASE_QUERY_TIMEOUT_MS`. Dropping `work` mid-transaction discards
    /// its connection (see `Checkout`), so no half-done transaction goes
    /// back to the pool; a stalled database or pooler becomes a 503 within
    /// the function's `maxDuration`, never a platform timeout.
    ///
    /// `work` is boxed: a transaction's future is large, and unboxed it was
    /// copied whole each time a future around it moved (about 5 % of the
    /// status function's CPU went to `memmove`).
    async fn within_deadline<T>(&self, work: impl Future<Output = T>) -> Result<T, DbError> {
        tokio::time::timeout(self.query_timeout, Box::pin(work))
            .await
            .map_err(|_| {
                DbError::Unavailable(format!(
                    "the database did not answer within {:?}",
                    self.query_timeout
                ))
            })
    }

    /// The transaction, and whether any of its statements failed with the
    /// pooler's signature ([`DbError::pooler_evidence`]).
    async fn transaction_unbounded<T, E>(
        &self,
        mode: StatementMode,
        role: &str,
        claims: &str,
        body: impl AsyncFnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> (Result<T, E>, bool)
    where
        E: From<DbError>,
    {
        let _timer = Timer::start(Dependency::Database);
        let evidence = AtomicBool::new(false);
        let noted = |error| noting_evidence(&evidence, error);
        let mut checkout = match self.checkout().await {
            Ok(client) => Checkout::new(client),
            Err(error) => return (Err(E::from(DbError::from(error))), false),
        };
        let client = checkout.client();
        let tx = Tx {
            client,
            mode,
            evidence: &evidence,
        };
        let framing = match Framing::new(client, mode, &self.statement_timeout).await {
            Ok(framing) => framing,
            Err(error) => {
                let error = noted(error);
                return (Err(E::from(error)), evidence.load(Ordering::Relaxed));
            }
        };
        let setup = async {
            let (begun, context_set) =
                join(framing.begin(), framing.set_context(role, claims)).await;
            begun.and(context_set).map(|_| ())
        };
        let (setup, result) = join(setup, body(&tx)).await;
        let result = match setup {
            Err(error) => Err(E::from(noted(error))),
            Ok(()) => result,
        };
        let outcome = match result {
            Ok(value) => match framing.commit().await {
                Ok(_) => {
                    checkout.release();
                    Ok(value)
                }
                Err(error) => Err(E::from(noted(error))),
            },
            Err(error) => {
                // A connection whose statement cache the server disowned is not reused.
                if client.query_typed(ROLLBACK, &[]).await.is_ok()
                    && !evidence.load(Ordering::Relaxed)
                {
                    checkout.release();
                }
                Err(error)
            }
        };
        (outcome, evidence.load(Ordering::Relaxed))
    }

    /// Round-trips one statement on the path every request takes (BEGIN,
    /// the context, the statement and COMMIT, named or unnamed as the
    /// requests send them), for health checks. A pooled connection the
    /// server closed while restarting fails once and is discarded; the
    /// second attempt opens a fresh one, so health reflects the database,
    /// not a stale socket.
    pub async fn probe(&self) -> Result<Probe, DbError> {
        let _timer = Timer::start(Dependency::Database);
        let started = std::time::Instant::now();
        let mut rows = self
            .one_trip(&RlsContext::login_role(), &SCHEMA_VERSION, &[])
            .await;
        if matches!(rows, Err(DbError::Unavailable(_))) {
            rows = self
                .one_trip(&RlsContext::login_role(), &SCHEMA_VERSION, &[])
                .await;
        }
        let row = rows?
            .into_iter()
            .next()
            .ok_or(DbError::MissingRow(SCHEMA_VERSION.sql))?;
        Ok(Probe {
            latency: started.elapsed(),
            schema_version: row
                .try_get(0)
                .map_err(|error| DbError::Query(Arc::new(error)))?,
        })
    }

    /// The round trip of [`Database::probe`].
    pub async fn ping(&self) -> Result<Duration, DbError> {
        self.probe().await.map(|probe| probe.latency)
    }
}

/// What [`Database::probe`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub latency: Duration,
    /// The newest migration applied to the database (`None`: none is).
    pub schema_version: Option<i64>,
}

/// The newest applied migration, readable by the login role alone.
const SCHEMA_VERSION: Statement = Statement::new(
    "select max(version)::int8 from public.refinery_schema_history",
    &[],
);
