//! One connection's statements: the framing of a transaction (BEGIN, the
//! caller's context, COMMIT), the statements inside it ([`Tx`]), and the
//! checkout that returns a connection to the pool only when it is clean.

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::join;

use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::{BEGIN, COMMIT, DbError, SET_CONTEXT, Statement, StatementMode};

/// BEGIN, the caller's context and COMMIT, as a connection sends them.
///
/// With named prepared statements the context and COMMIT are prepared once
/// per connection, as the statements between them are: sent unnamed,
/// PostgreSQL parsed and planned the context select again for every
/// request, and a status read cost it about a quarter more CPU than the same
/// transaction prepared (`scripts/bench`, README: Benchmark). Behind a
/// pooler they stay unnamed.
///
/// BEGIN is always sent unnamed, so it cannot fail where a named statement
/// can (an unannounced pooler's other server connection): were it to fail,
/// the statements pipelined behind it would run outside any transaction,
/// and the login role's would commit one by one (a purge batch, say)
/// before the failure was known and the work retried.
pub(super) struct Framing<'a> {
    client: &'a deadpool_postgres::ClientWrapper,
    /// `statement_timeout` for the transaction, in milliseconds.
    statement_timeout: &'a str,
    /// The context select and COMMIT, when statements are prepared.
    prepared: Option<[tokio_postgres::Statement; 2]>,
}

impl<'a> Framing<'a> {
    /// Looks the statements up in the connection's cache (preparing them,
    /// once per connection, on a miss), so each request below is written on
    /// its first poll and the pipeline keeps its order.
    pub(super) async fn new(
        client: &'a deadpool_postgres::ClientWrapper,
        mode: StatementMode,
        statement_timeout: &'a str,
    ) -> Result<Self, tokio_postgres::Error> {
        let prepared = match mode {
            StatementMode::Prepared => {
                // Polled together, so a new connection prepares them in one turn.
                let (set_context, commit) = join(
                    client.prepare_typed_cached(SET_CONTEXT, &[Type::TEXT, Type::TEXT, Type::TEXT]),
                    client.prepare_typed_cached(COMMIT, &[]),
                )
                .await;
                Some([set_context?, commit?])
            }
            StatementMode::Unnamed => None,
        };
        Ok(Self {
            client,
            statement_timeout,
            prepared,
        })
    }

    pub(super) async fn begin(&self) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.client.query_typed(BEGIN, &[]).await
    }

    /// Switches to `role` and publishes `claims` for the transaction.
    pub(super) async fn set_context(
        &self,
        role: &str,
        claims: &str,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        match &self.prepared {
            Some([set_context, _]) => {
                self.client
                    .query(set_context, &[&role, &claims, &self.statement_timeout])
                    .await
            }
            None => {
                let params = [
                    (&role as &(dyn ToSql + Sync), Type::TEXT),
                    (&claims as &(dyn ToSql + Sync), Type::TEXT),
                    (&self.statement_timeout as &(dyn ToSql + Sync), Type::TEXT),
                ];
                self.client.query_typed(SET_CONTEXT, &params).await
            }
        }
    }

    pub(super) async fn commit(&self) -> Result<Vec<Row>, tokio_postgres::Error> {
        match &self.prepared {
            Some([_, commit]) => self.client.query(commit, &[]).await,
            None => self.client.query_typed(COMMIT, &[]).await,
        }
    }
}

/// The error as [`DbError`], with `evidence` set when it is the pooler's
/// signature ([`DbError::pooler_evidence`]).
pub(super) fn noting_evidence(evidence: &AtomicBool, error: tokio_postgres::Error) -> DbError {
    let error = DbError::from(error);
    if error.pooler_evidence() {
        evidence.store(true, Ordering::Relaxed);
    }
    error
}

/// Runs `sql` as a named statement cached per connection, or as an unnamed
/// one with its parameter types declared.
pub(super) async fn query_in_mode(
    client: &deadpool_postgres::ClientWrapper,
    mode: StatementMode,
    sql: &str,
    types: &[Type],
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    match mode {
        StatementMode::Prepared => {
            let statement = client.prepare_typed_cached(sql, types).await?;
            client.query(&statement, params).await
        }
        StatementMode::Unnamed => {
            client
                .query_typed(sql, &typed_params(sql, types, params))
                .await
        }
    }
}

pub(super) fn typed_params<'a>(
    sql: &str,
    types: &[Type],
    params: &'a [&'a (dyn ToSql + Sync)],
) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    debug_assert_eq!(types.len(), params.len(), "parameter count of `{sql}`");
    params
        .iter()
        .zip(types)
        .map(|(param, ty)| (*param, ty.clone()))
        .collect()
}

/// The statements of an open transaction.
pub struct Tx<'a> {
    pub(super) client: &'a deadpool_postgres::ClientWrapper,
    pub(super) mode: StatementMode,
    /// Set when a statement fails with the pooler's signature.
    pub(super) evidence: &'a AtomicBool,
}

impl Tx<'_> {
    /// Runs a statement and returns its rows.
    pub async fn query(
        &self,
        stmt: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let sql = stmt.text_in(self.mode);
        let rows = query_in_mode(self.client, self.mode, sql, stmt.types, params).await;
        rows.map_err(|error| noting_evidence(self.evidence, error))
    }

    /// Runs a statement that returns at most one row.
    pub async fn query_opt(
        &self,
        stmt: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        Ok(self.query(stmt, params).await?.into_iter().next())
    }

    /// Runs a statement and reads each of its rows with `from_row`.
    pub async fn query_as<T>(
        &self,
        stmt: &Statement,
        params: &[&(dyn ToSql + Sync)],
        from_row: fn(&Row) -> T,
    ) -> Result<Vec<T>, DbError> {
        Ok(self
            .query(stmt, params)
            .await?
            .iter()
            .map(from_row)
            .collect())
    }

    /// Runs a statement that returns at most one row, read by `from_row`.
    pub async fn query_opt_as<T>(
        &self,
        stmt: &Statement,
        params: &[&(dyn ToSql + Sync)],
        from_row: fn(&Row) -> T,
    ) -> Result<Option<T>, DbError> {
        Ok(self.query_opt(stmt, params).await?.as_ref().map(from_row))
    }

    /// Runs a statement that returns exactly one row.
    pub async fn query_one(
        &self,
        stmt: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        self.query_opt(stmt, params)
            .await?
            .ok_or(DbError::MissingRow(stmt.sql))
    }
}

/// A pooled connection that is returned to the pool only when the code that
/// used it says it is clean; otherwise it is closed on drop.
pub(super) struct Checkout {
    client: Option<deadpool_postgres::Client>,
    clean: bool,
}

impl Checkout {
    pub(super) fn new(client: deadpool_postgres::Client) -> Self {
        Self {
            client: Some(client),
            clean: false,
        }
    }

    pub(super) fn client(&self) -> &deadpool_postgres::ClientWrapper {
        self.client
            .as_ref()
            .expect("the client is present until drop")
    }

    pub(super) fn release(&mut self) {
        self.clean = true;
    }

    /// The outcome of the connection's work, the connection going back to
    /// the pool unless it broke or the server disowned its statement cache
    /// (a pooler's signature, [`DbError::pooler_evidence`]).
    pub(super) fn settle<T>(
        &mut self,
        outcome: Result<T, tokio_postgres::Error>,
    ) -> Result<T, DbError> {
        let outcome = outcome.map_err(DbError::from);
        if !outcome.as_ref().is_err_and(DbError::spoils_connection) {
            self.release();
        }
        outcome
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.clean
            && let Some(client) = self.client.take()
        {
            // Detached from the pool and dropped: the socket closes and the
            // server rolls back whatever the connection was in the middle of.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}
