//! Anonymous wizard sessions: the source of truth behind the Redis session
//! cache (`cache::sessions`, a layer above).
//!
//! Every function runs in a transaction whose context is
//! `RlsContext::anonymous(Some(hash))` (or a user presenting the session), so
//! the policy on `onboarding.anonymous_sessions` lets it reach that one row.

use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;

use crate::db::{DbError, Statement, Tx};

row_struct! {
    /// A session row.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SessionRow {
        pub id_hash: String,
        pub created_at: DateTime<Utc>,
        pub last_seen_at: DateTime<Utc>,
        pub expires_at: DateTime<Utc>,
    }
}

const CREATE: Statement = Statement::new(
    "insert into onboarding.anonymous_sessions (id_hash, expires_at)
     values ($1, now() + make_interval(secs => $2))
     on conflict (id_hash) do update
       set last_seen_at = now(), expires_at = greatest(anonymous_sessions.expires_at, excluded.expires_at)
     returning id_hash, created_at, last_seen_at, expires_at",
    &[Type::TEXT, Type::FLOAT8],
);

const FETCH: Statement = Statement::new(
    "select id_hash, created_at, last_seen_at, expires_at
     from onboarding.anonymous_sessions
     where id_hash = $1 and expires_at > now() and merged_into_user_id is null",
    &[Type::TEXT],
);

const TOUCH: Statement = Statement::new(
    "update onboarding.anonymous_sessions
     set last_seen_at = now(), expires_at = now() + make_interval(secs => $2)
     where id_hash = $1 and expires_at > now() and merged_into_user_id is null
     returning id_hash, created_at, last_seen_at, expires_at",
    &[Type::TEXT, Type::FLOAT8],
);

fn seconds(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64()
}

/// Records a new session (or refreshes one that already exists), valid for `ttl`.
pub async fn create(
    tx: &Tx<'_>,
    id_hash: &str,
    ttl: std::time::Duration,
) -> Result<SessionRow, DbError> {
    let row = tx.query_one(&CREATE, &[&id_hash, &seconds(ttl)]).await?;
    Ok(SessionRow::from_row(&row))
}

/// The session, unless it does not exist, has expired, or was merged into
/// a user (its drafts are theirs now: presented again, it is a new visitor's).
pub async fn fetch(tx: &Tx<'_>, id_hash: &str) -> Result<Option<SessionRow>, DbError> {
    tx.query_opt_as(&FETCH, &[&id_hash], SessionRow::from_row)
        .await
}

/// Marks the session seen now and pushes its expiry to now + `ttl`;
/// `None` when it does not exist, has expired or was merged.
pub async fn touch(
    tx: &Tx<'_>,
    id_hash: &str,
    ttl: std::time::Duration,
) -> Result<Option<SessionRow>, DbError> {
    tx.query_opt_as(&TOUCH, &[&id_hash, &seconds(ttl)], SessionRow::from_row)
        .await
}
