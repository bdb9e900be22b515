//! Per-step answers: one JSONB object per progress row and step, with a
//! version that backs `ETag`/`If-Match`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::db::{Database, DbError, RlsContext, Statement, Tx};

/// A stored answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnswer {
    pub step: String,
    pub answers: serde_json::Value,
    pub completed: bool,
    pub flow_version: i32,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

fn from_row(row: &Row) -> StoredAnswer {
    from_columns(row, "flow_version", "updated_at")
}

/// The answer of an `onboarding.progress_with_answer` row, which carries its
/// progress row's columns too and names the answer's `flow_version` and
/// `updated_at` `answer_flow_version` and `answer_updated_at`.
pub(super) fn from_progress_with_answer(row: &Row) -> StoredAnswer {
    from_columns(row, "answer_flow_version", "answer_updated_at")
}

fn from_columns(row: &Row, flow_version: &str, updated_at: &str) -> StoredAnswer {
    StoredAnswer {
        step: row.get("step"),
        answers: row.get("answers"),
        completed: row.get::<_, &str>("status") == "completed",
        flow_version: row.get(flow_version),
        version: row.get("version"),
        updated_at: row.get(updated_at),
    }
}

/// The status a stored answer carries.
pub(super) fn status_of(completed: bool) -> &'static str {
    if completed { "completed" } else { "draft" }
}

/// The caller's own answer to `step` of `flow_id` (see `progress::FETCH_OWN`
/// for "own"). Sent as one call of `onboarding.own_step_answer_each_as`,
/// which sets each caller's context and runs this query, with the other step
/// reads queued meanwhile ([`Statement::each_in_one_call`]).
pub const FETCH_OWN_STEP: Statement = Statement::new(
    concat!(
        "select a.step, a.answers, a.status, a.flow_version, a.version, a.updated_at
         from onboarding.step_answers a
         join onboarding.progress p on p.id = a.progress_id
         where p.flow_id = $1 and a.step = $2 and ",
        caller_owns_progress!("p.")
    ),
    &[Type::TEXT, Type::TEXT],
)
.each_in_one_call(
    "select ord, step, answers, status, flow_version, version, updated_at
     from onboarding.own_step_answer_each_as($1, $2, $3, $4)",
    2,
);

/// Every answer of a progress row, ordered by step.
pub const ALL_FOR_PROGRESS: Statement = Statement::new(
    "select step, answers, status, flow_version, version, updated_at
     from onboarding.step_answers where progress_id = $1 order by step",
    &[Type::UUID],
)
.when_unnamed(
    "select step, answers, status, flow_version, version, updated_at
     from onboarding.answers_of_progress($1)",
);

const INSERT: Statement = Statement::new(
    "insert into onboarding.step_answers (progress_id, step, answers, status, flow_version)
     values ($1, $2, $3, $4, $5)
     on conflict (progress_id, step) do nothing
     returning step, answers, status, flow_version, version, updated_at",
    &[Type::UUID, Type::TEXT, Type::JSONB, Type::TEXT, Type::INT4],
)
.when_unnamed(
    "select step, answers, status, flow_version, version, updated_at
     from onboarding.insert_step_answer($1, $2, $3, $4, $5)",
);

/// Replaces an answer if its version is still the one the writer read.
pub const REPLACE_IF_VERSION: Statement = Statement::new(
    "update onboarding.step_answers
     set answers = $3, status = $4, flow_version = $5, version = version + 1
     where progress_id = $1 and step = $2 and version = $6
     returning step, answers, status, flow_version, version, updated_at",
    &[
        Type::UUID,
        Type::TEXT,
        Type::JSONB,
        Type::TEXT,
        Type::INT4,
        Type::INT8,
    ],
)
.when_unnamed(
    "select step, answers, status, flow_version, version, updated_at
     from onboarding.replace_step_answer_if_version($1, $2, $3, $4, $5, $6)",
);

/// Reads the caller's answer to one step in one network round trip.
pub async fn fetch_own_in_one_trip(
    db: &Database,
    context: &RlsContext,
    flow_id: &str,
    step: &str,
) -> Result<Option<StoredAnswer>, DbError> {
    let rows = db
        .read_own(context, &FETCH_OWN_STEP, &[flow_id, step])
        .await?;
    Ok(rows.first().map(from_row))
}

/// The caller's own answer to one step, inside a transaction.
pub async fn fetch_own_step(
    tx: &Tx<'_>,
    flow_id: &str,
    step: &str,
) -> Result<Option<StoredAnswer>, DbError> {
    tx.query_opt_as(&FETCH_OWN_STEP, &[&flow_id, &step], from_row)
        .await
}

/// Every answer of a progress row, by step.
pub async fn all_for_progress(
    tx: &Tx<'_>,
    progress_id: Uuid,
) -> Result<BTreeMap<String, StoredAnswer>, DbError> {
    Ok(by_step(
        &tx.query(&ALL_FOR_PROGRESS, &[&progress_id]).await?,
    ))
}

fn by_step(rows: &[Row]) -> BTreeMap<String, StoredAnswer> {
    rows.iter()
        .map(from_row)
        .map(|answer| (answer.step.clone(), answer))
        .collect()
}

/// What a write should do with the version it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// First answer to the step; `None` when one exists already.
    Insert,
    /// Replace the answer at exactly this version; `None` when it moved on.
    ReplaceAt(i64),
}

/// An answer to store, and the precondition it is stored under.
pub struct NewAnswer<'a> {
    pub step: &'a str,
    pub answers: &'a serde_json::Value,
    pub completed: bool,
    pub write: Write,
}

/// Stores an answer; `None` when the precondition of `write` no longer holds.
pub async fn store(
    tx: &Tx<'_>,
    progress_id: Uuid,
    step: &str,
    answers: &serde_json::Value,
    completed: bool,
    flow_version: i32,
    write: Write,
) -> Result<Option<StoredAnswer>, DbError> {
    let status = status_of(completed);
    let row = match write {
        Write::Insert => {
            tx.query_opt(
                &INSERT,
                &[&progress_id, &step, answers, &status, &flow_version],
            )
            .await?
        }
        Write::ReplaceAt(version) => {
            tx.query_opt(
                &REPLACE_IF_VERSION,
                &[
                    &progress_id,
                    &step,
                    answers,
                    &status,
                    &flow_version,
                    &version,
                ],
            )
            .await?
        }
    };
    Ok(row.as_ref().map(from_row))
}
