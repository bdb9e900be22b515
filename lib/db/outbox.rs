//! The transactional outbox (`migrations/V20261201000700__outbox.sql`): one
//! statement to write an event inside the caller's own transaction, and the
//! two courier functions that claim due events and record what became of an
//! attempt. Claiming and settling run as the login role
//! ([`crate::db::Database::as_login_role`]); no request role can read an event.

use tokio_postgres::types::Type;

use crate::db::{DbError, Statement, Tx};

/// Writes an event for the signed-in caller of the transaction; the owner
/// comes from the context, never from the arguments (also as the body's
/// `data.userId`). Writes nothing for an anonymous caller.
pub const ENQUEUE: Statement = Statement::new(
    "insert into onboarding.outbox (event_id, user_id, progress_id, event_type, payload)
     select $1, onboarding.current_user_id(), $2, $3,
            jsonb_set($4, '{data,userId}', to_jsonb(onboarding.current_user_id()))
     where onboarding.current_user_id() is not null",
    &[Type::UUID, Type::UUID, Type::TEXT, Type::JSONB],
);

const CLAIM: Statement = Statement::new(
    "select id, event_id, user_id, event_type, payload, attempts, delivered_to
     from onboarding.outbox_claim($1, $2) order by id",
    &[Type::INT4, Type::INT4],
);

const SETTLE: Statement = Statement::new(
    "select onboarding.outbox_settle($1, $2, $3, $4, $5)",
    &[
        Type::INT8,
        Type::TEXT_ARRAY,
        Type::TEXT,
        Type::INT4,
        Type::TEXT,
    ],
);

/// One event to write.
pub struct NewEvent<'a> {
    /// The `webhook-id` of every delivery.
    pub event_id: uuid::Uuid,
    /// The progress row the event reports on; the event goes with it.
    pub progress_id: uuid::Uuid,
    pub event_type: &'a str,
    /// The webhook body.
    pub payload: &'a serde_json::Value,
}

/// Writes `event` in the caller's transaction (nothing when the caller is
/// not signed in).
pub async fn enqueue(tx: &Tx<'_>, event: &NewEvent<'_>) -> Result<(), DbError> {
    tx.query(
        &ENQUEUE,
        &[
            &event.event_id,
            &event.progress_id,
            &event.event_type,
            event.payload,
        ],
    )
    .await?;
    Ok(())
}

/// An event a courier claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub event_id: uuid::Uuid,
    pub user_id: String,
    pub event_type: String,
    pub payload: serde_json::Value,
    /// Attempts started, this one included.
    pub attempts: i32,
    /// Destinations that acknowledged an earlier attempt.
    pub delivered_to: Vec<String>,
}

/// Claims up to `batch_size` due events, each the oldest pending one of its
/// user, leased for `lease_seconds`.
pub async fn claim(
    tx: &Tx<'_>,
    batch_size: i32,
    lease_seconds: i32,
) -> Result<Vec<Claimed>, DbError> {
    Ok(tx
        .query(&CLAIM, &[&batch_size, &lease_seconds])
        .await?
        .into_iter()
        .map(|row| Claimed {
            id: row.get(0),
            event_id: row.get(1),
            user_id: row.get(2),
            event_type: row.get(3),
            payload: row.get(4),
            attempts: row.get(5),
            delivered_to: row.get(6),
        })
        .collect())
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every destination acknowledged it.
    Delivered,
    /// Due again in this many seconds.
    Retry { in_seconds: i32, error: String },
    /// No more attempts.
    Dead { error: String },
}

/// Records `outcome` for a claimed event, with the destinations that have
/// acknowledged it so far; `false` when it was no longer pending.
pub async fn settle(
    tx: &Tx<'_>,
    id: i64,
    delivered_to: &[String],
    outcome: &Outcome,
) -> Result<bool, DbError> {
    let (name, retry, error): (&str, Option<i32>, Option<&str>) = match outcome {
        Outcome::Delivered => ("delivered", None, None),
        Outcome::Retry { in_seconds, error } => ("retry", Some(*in_seconds), Some(error)),
        Outcome::Dead { error } => ("dead", None, Some(error)),
    };
    let row = tx
        .query_one(&SETTLE, &[&id, &delivered_to, &name, &retry, &error])
        .await?;
    Ok(row.get(0))
}
