//! What a database failure means for the caller: unavailable (503, retry),
//! a failed statement, or a bug.

use std::sync::Arc;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// A database failure, split by what the client should be told. Cloned
/// when one statement answered several callers (`db::batched_read`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or is restarting: answer 503 and retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement failed; the caller maps constraint violations, the rest is a bug.
    #[error(transparent)]
    Query(Arc<tokio_postgres::Error>),
    /// A statement that always returns a row returned none: a bug, not a client error.
    #[error("`{0}` returned no row")]
    MissingRow(&'static str),
}

impl DbError {
    /// The SQLSTATE of a failed statement.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            DbError::Query(error) => error.code(),
            DbError::Unavailable(_) | DbError::MissingRow(_) => None,
        }
    }

    /// Whether the server disowned a named statement this connection
    /// prepared (`26000`), or already had one of its name (`42P05`): the
    /// signature of a transaction-mode pooler between us and the server.
    pub fn pooler_evidence(&self) -> bool {
        self.code().is_some_and(|code| {
            *code == SqlState::INVALID_SQL_STATEMENT_NAME || *code == SqlState::DUPLICATE_PSTATEMENT
        })
    }

    /// Whether the connection the error came from must not serve another
    /// request: it broke, or a pooler disowned its named statements.
    pub fn spoils_connection(&self) -> bool {
        matches!(self, DbError::Unavailable(_)) || self.pooler_evidence()
    }

    /// The constraint a failed statement violated.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            DbError::Query(error) => error.as_db_error().and_then(|db| db.constraint()),
            DbError::Unavailable(_) | DbError::MissingRow(_) => None,
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        if is_unavailable(&error) {
            DbError::Unavailable(with_causes(&error))
        } else {
            DbError::Query(Arc::new(error))
        }
    }
}

impl From<PoolError> for DbError {
    fn from(error: PoolError) -> Self {
        DbError::Unavailable(with_causes(&error))
    }
}

/// An error and every cause under it: `db error` alone says nothing, the
/// server's `too many connections for database` does.
pub(super) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    message
}

/// Whether an error means "the server is not there right now" rather than
/// "this statement is wrong".
fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // Class 08 (connection exception), shutdown and start-up states.
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                // `statement_timeout` ended it: the database is too slow right now.
                || *code == SqlState::QUERY_CANCELED
        }
        // No SQLSTATE: an I/O error on the socket.
        None => error.as_db_error().is_none(),
    }
}
