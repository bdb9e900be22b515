//! Retention: deleting what has outlived its use, everyone's at once.
//!
//! Expired anonymous sessions (with the drafts only they owned), idempotency
//! records past their replay window, analytics events older than
//! `ANALYTICS_RETENTION_DAYS`, AI suggestions older than
//! `AI_SUGGESTION_RETENTION_DAYS` and outbox events settled (delivered or
//! dead) more than `OUTBOX_RETENTION_DAYS` ago. Row Level Security keeps
//! every request's role to its own rows, so the purge goes through the
//! SECURITY DEFINER functions of `migrations/V20261201000100__retention.sql`
//! and `V20261203000100__outbox_retention.sql`, which only the login role may
//! execute ([`Database::as_login_role`]). Each call deletes at
//! most one batch, in its own transaction, taking rows another purge holds
//! never (`skip locked`): [`purge`] repeats them until nothing is left or its
//! time is up, and a later run continues where it stopped.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;
use utoipa::ToSchema;

use crate::db::{Database, DbError, Statement, Tx};
use crate::settings::{ConfigError, Lookup, parse_number};

/// Rows one statement deletes at most.
pub const BATCH_SIZE: i32 = 1_000;

/// How long one purge keeps starting batches: below the functions'
/// `maxDuration` (10 s in `vercel.json`), with room for the last batch.
pub const TIME_BUDGET: Duration = Duration::from_secs(8);

/// How long data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Days an analytics event is kept after it happened
    /// (`ANALYTICS_RETENTION_DAYS`, default 400).
    pub analytics_event_days: i32,
    /// Days an AI suggestion is kept after it was made
    /// (`AI_SUGGESTION_RETENTION_DAYS`, default 90).
    pub ai_suggestion_days: i32,
    /// Days an outbox event is kept after it was delivered or dead-lettered
    /// (`OUTBOX_RETENTION_DAYS`, default 30); a pending one is kept however
    /// old.
    pub outbox_days: i32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            analytics_event_days: 400,
            ai_suggestion_days: 90,
            outbox_days: 30,
        }
    }
}

impl RetentionSettings {
    pub fn from_lookup(lookup: &dyn Lookup) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            analytics_event_days: parse_number(
                lookup,
                "ANALYTICS_RETENTION_DAYS",
                defaults.analytics_event_days,
                1..=3_650,
            )?,
            ai_suggestion_days: parse_number(
                lookup,
                "AI_SUGGESTION_RETENTION_DAYS",
                defaults.ai_suggestion_days,
                1..=3_650,
            )?,
            outbox_days: parse_number(
                lookup,
                "OUTBOX_RETENTION_DAYS",
                defaults.outbox_days,
                1..=3_650,
            )?,
        })
    }
}

/// What one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PurgeReport)]
pub struct Purged {
    /// Expired anonymous sessions, each with the drafts only it owned.
    #[schema(minimum = 0)]
    pub sessions: i64,
    /// Idempotency records past their 24-hour replay window.
    #[schema(minimum = 0)]
    pub idempotency_keys: i64,
    /// Analytics events older than `ANALYTICS_RETENTION_DAYS`.
    #[schema(minimum = 0)]
    pub events: i64,
    /// AI suggestions older than `AI_SUGGESTION_RETENTION_DAYS`.
    #[schema(minimum = 0)]
    pub suggestions: i64,
    /// Outbox events delivered or dead-lettered more than
    /// `OUTBOX_RETENTION_DAYS` ago (pending ones are kept however old).
    #[schema(minimum = 0)]
    pub outbox_events: i64,
    /// `true`: nothing past its retention is left. `false`: the run's time
    /// was up first; the next run continues.
    // "Nothing left" excludes rows another overlapping purge was deleting.
    pub complete: bool,
}

const PURGE_EXPIRED_SESSIONS: Statement = Statement::new(
    "select onboarding.purge_expired_sessions($1)",
    &[Type::INT4],
);

const PURGE_EXPIRED_IDEMPOTENCY_KEYS: Statement = Statement::new(
    "select onboarding.purge_expired_idempotency_keys($1)",
    &[Type::INT4],
);

const PURGE_OLD_EVENTS: Statement = Statement::new(
    "select onboarding.purge_old_events($1, $2)",
    &[Type::INT4, Type::INT4],
);

const PURGE_OLD_SUGGESTIONS: Statement = Statement::new(
    "select onboarding.purge_old_suggestions($1, $2)",
    &[Type::INT4, Type::INT4],
);

const PURGE_SETTLED_OUTBOX: Statement = Statement::new(
    "select onboarding.purge_settled_outbox($1, $2)",
    &[Type::INT4, Type::INT4],
);

async fn count(
    tx: &Tx<'_>,
    stmt: &Statement,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<i64, DbError> {
    let row = tx.query_one(stmt, params).await?;
    Ok(i64::from(row.get::<_, i32>(0)))
}

/// Deletes up to `batch_size` expired anonymous sessions and the drafts only
/// they owned; returns how many sessions.
pub async fn expired_sessions(tx: &Tx<'_>, batch_size: i32) -> Result<i64, DbError> {
    count(tx, &PURGE_EXPIRED_SESSIONS, &[&batch_size]).await
}

/// Deletes up to `batch_size` idempotency records past their replay window.
pub async fn expired_idempotency_keys(tx: &Tx<'_>, batch_size: i32) -> Result<i64, DbError> {
    count(tx, &PURGE_EXPIRED_IDEMPOTENCY_KEYS, &[&batch_size]).await
}

/// Deletes up to `batch_size` analytics events older than `days` days.
pub async fn old_events(tx: &Tx<'_>, days: i32, batch_size: i32) -> Result<i64, DbError> {
    count(tx, &PURGE_OLD_EVENTS, &[&days, &batch_size]).await
}

/// Deletes up to `batch_size` AI suggestions older than `days` days.
pub async fn old_suggestions(tx: &Tx<'_>, days: i32, batch_size: i32) -> Result<i64, DbError> {
    count(tx, &PURGE_OLD_SUGGESTIONS, &[&days, &batch_size]).await
}

/// Deletes up to `batch_size` outbox events delivered or dead-lettered more
/// than `days` days ago.
pub async fn settled_outbox_events(
    tx: &Tx<'_>,
    days: i32,
    batch_size: i32,
) -> Result<i64, DbError> {
    count(tx, &PURGE_SETTLED_OUTBOX, &[&days, &batch_size]).await
}

/// The kinds of rows a purge deletes, in the order each round takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sessions,
    IdempotencyKeys,
    Events,
    Suggestions,
    OutboxEvents,
}

impl Purged {
    fn add(&mut self, kind: Kind, deleted: i64) {
        let total = match kind {
            Kind::Sessions => &mut self.sessions,
            Kind::IdempotencyKeys => &mut self.idempotency_keys,
            Kind::Events => &mut self.events,
            Kind::Suggestions => &mut self.suggestions,
            Kind::OutboxEvents => &mut self.outbox_events,
        };
        *total += deleted;
    }
}

/// Deletes everything past its retention, one batch of `batch_size` rows per
/// transaction, for as long as `budget` allows starting another batch.
///
/// Each round deletes one batch of every kind that still had a full batch
/// last time, so no kind waits for another to finish; a batch that comes
/// back short means that kind is done (rows another purge holds locked are
/// that purge's). Batches already committed stay deleted when a later one
/// fails.
pub async fn purge(
    db: &Database,
    settings: &RetentionSettings,
    batch_size: i32,
    budget: Duration,
) -> Result<Purged, DbError> {
    let deadline = Instant::now() + budget;
    let mut purged = Purged::default();
    let mut pending = vec![
        Kind::Sessions,
        Kind::IdempotencyKeys,
        Kind::Events,
        Kind::Suggestions,
        Kind::OutboxEvents,
    ];
    while !pending.is_empty() {
        let mut more = Vec::with_capacity(pending.len());
        for kind in pending {
            if Instant::now() >= deadline {
                tracing::info!(?purged, "the purge ran out of time; the next run continues");
                return Ok(purged);
            }
            let deleted = db
                .as_login_role(async |tx| match kind {
                    Kind::Sessions => expired_sessions(tx, batch_size).await,
                    Kind::IdempotencyKeys => expired_idempotency_keys(tx, batch_size).await,
                    Kind::Events => old_events(tx, settings.analytics_event_days, batch_size).await,
                    Kind::Suggestions => {
                        old_suggestions(tx, settings.ai_suggestion_days, batch_size).await
                    }
                    Kind::OutboxEvents => {
                        settled_outbox_events(tx, settings.outbox_days, batch_size).await
                    }
                })
                .await
                .inspect_err(|error| {
                    tracing::warn!(?purged, %error, "the purge stopped at a failed batch");
                })?;
            purged.add(kind, deleted);
            if deleted >= i64::from(batch_size) {
                more.push(kind);
            }
        }
        pending = more;
    }
    purged.complete = true;
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::lookup_of as lookup;

    #[test]
    fn retention_defaults_to_400_days_of_events_90_of_suggestions_and_30_of_settled_events() {
        let settings = RetentionSettings::from_lookup(&lookup(&[])).unwrap();
        assert_eq!(settings, RetentionSettings::default());
        assert_eq!(settings.analytics_event_days, 400);
        assert_eq!(settings.ai_suggestion_days, 90);
        assert_eq!(settings.outbox_days, 30);
        let settings = RetentionSettings::from_lookup(&lookup(&[
            ("ANALYTICS_RETENTION_DAYS", "30"),
            ("AI_SUGGESTION_RETENTION_DAYS", "7"),
            ("OUTBOX_RETENTION_DAYS", "3"),
        ]))
        .unwrap();
        assert_eq!(settings.analytics_event_days, 30);
        assert_eq!(settings.ai_suggestion_days, 7);
        assert_eq!(settings.outbox_days, 3);
    }

    #[test]
    fn a_retention_under_one_day_is_refused_naming_its_variable() {
        let error =
            RetentionSettings::from_lookup(&lookup(&[("AI_SUGGESTION_RETENTION_DAYS", "0")]))
                .unwrap_err();
        assert_eq!(error.variable, "AI_SUGGESTION_RETENTION_DAYS");
        let error =
            RetentionSettings::from_lookup(&lookup(&[("OUTBOX_RETENTION_DAYS", "0")])).unwrap_err();
        assert_eq!(error.variable, "OUTBOX_RETENTION_DAYS");
    }
}
