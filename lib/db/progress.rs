//! Wizard progress rows: one per owner (a user or an anonymous session) and flow.
//!
//! Which rows a caller reaches is decided by the policies on
//! `onboarding.progress`; the `where` clauses here only pick, among the rows
//! the caller may see, the one that is their own (an organization admin also
//! sees their members' rows).

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::db::{Database, DbError, RlsContext, Statement, Tx};

/// Stored answers by step, as read with the progress row.
pub type StoredAnswers = serde_json::Map<String, serde_json::Value>;

/// Where a caller stands in a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressRecord {
    pub id: Uuid,
    pub user_id: Option<String>,
    pub organization_id: Option<String>,
    pub flow_id: String,
    pub flow_version: i32,
    pub state: ProgressState,
    pub current_step: Option<String>,
    pub completed_steps: Vec<String>,
    pub row_version: i64,
    pub updated_at: DateTime<Utc>,
}

/// The stored states; a caller without a row has not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    InProgress,
    Completed,
}

impl ProgressState {
    fn parse(raw: &str) -> Self {
        match raw {
            "completed" => ProgressState::Completed,
            _ => ProgressState::InProgress,
        }
    }
}

fn from_row(row: &Row) -> ProgressRecord {
    ProgressRecord {
        id: row.get("id"),
        user_id: row.get("user_id"),
        organization_id: row.get("organization_id"),
        flow_id: row.get("flow_id"),
        flow_version: row.get("flow_version"),
        state: ProgressState::parse(row.get("state")),
        current_step: row.get("current_step"),
        completed_steps: row.get("completed_steps"),
        row_version: row.get("row_version"),
        updated_at: row.get("updated_at"),
    }
}

macro_rules! with_columns {
    ($head:literal, $($tail:tt)+) => {
        concat!(
            $head,
            " id, user_id, organization_id, flow_id, flow_version, state, current_step, completed_steps, row_version, updated_at ",
            $($tail)+
        )
    };
}

/// The caller's own row for a flow: the user's when signed in, else the session's.
const FETCH_OWN: Statement = Statement::new(
    with_columns!(
        "select",
        concat!(
            "from onboarding.progress where flow_id = $1 and ",
            caller_owns_progress!("")
        )
    ),
    &[Type::TEXT],
);

/// The caller's own row, locked: the first statement of every save.
pub const FETCH_OWN_FOR_UPDATE: Statement = Statement::new(
    with_columns!(
        "select",
        concat!(
            "from onboarding.progress where flow_id = $1 and ",
            caller_owns_progress!(""),
            " for update"
        )
    ),
    &[Type::TEXT],
);

/// The caller's own row and all its answers in one statement, so the status
/// read (which needs answers for step conditions) stays one round trip. Sent
/// as one call of `onboarding.own_progress_with_answers_each_as`, which sets
/// each caller's context and runs this query, with the other status reads
/// queued meanwhile ([`Statement::each_in_one_call`]).
pub const FETCH_OWN_WITH_ANSWERS: Statement = Statement::new(
    with_columns!(
        "select",
        concat!(
            ", coalesce((select jsonb_object_agg(a.step, a.answers)
                    from onboarding.step_answers a where a.progress_id = progress.id), '{}') as answers
             from onboarding.progress where flow_id = $1 and ",
            caller_owns_progress!("")
        )
    ),
    &[Type::TEXT],
)
.each_in_one_call(
    with_columns!(
        "select ord,",
        ", answers from onboarding.own_progress_with_answers_each_as($1, $2, $3)"
    ),
    1,
);

/// Records the completed steps and the current one: the last statement of a save.
pub const RECORD_STEP: Statement = Statement::new(
    with_columns!(
        "update onboarding.progress
         set completed_steps = $2, current_step = $3, flow_version = $4, row_version = row_version + 1
         where id = $1
         returning",
        ""
    ),
    &[Type::UUID, Type::TEXT_ARRAY, Type::TEXT, Type::INT4],
);

const MARK_COMPLETED: Statement = Statement::new(
    with_columns!(
        "update onboarding.progress
         set state = 'completed', completed_at = now(), current_step = null,
             organization_id = coalesce($2, organization_id), row_version = row_version + 1
         where id = $1 and state <> 'completed'
         returning",
        ""
    ),
    &[Type::UUID, Type::TEXT],
);

/// The anonymous session's rows that a signed-in user presenting it may adopt.
const PRESENTED_SESSION_ROWS: Statement = Statement::new(
    with_columns!(
        "select",
        "from onboarding.progress
         where user_id is null and session_id = (select onboarding.current_session_id())
         order by flow_id
         for update"
    ),
    &[],
);

const ADOPT: Statement = Statement::new(
    with_columns!(
        "update onboarding.progress
         set user_id = onboarding.current_user_id(), session_id = null,
             organization_id = onboarding.current_organization_id(), row_version = row_version + 1
         where id = $1 and user_id is null
         returning",
        ""
    ),
    &[Type::UUID],
);

const LIST_VISIBLE: Statement = Statement::new(
    with_columns!("select", "from onboarding.progress order by created_at, id"),
    &[],
);

const START: Statement = Statement::new(
    with_columns!(
        "insert into onboarding.progress (user_id, session_id, organization_id, flow_id, flow_version, current_step)
         select onboarding.current_user_id(),
                case when onboarding.current_user_id() is null then onboarding.current_session_id() end,
                onboarding.current_organization_id(),
                $1, $2, $3
         on conflict do nothing
         returning",
        ""
    ),
    &[Type::TEXT, Type::INT4, Type::TEXT],
);

const SET_CURRENT_STEP: Statement = Statement::new(
    with_columns!(
        "update onboarding.progress
         set current_step = $3, row_version = row_version + 1
         where id = $1 and row_version = $2
         returning",
        ""
    ),
    &[Type::UUID, Type::INT8, Type::TEXT],
);

const DELETE: Statement = Statement::new(
    "delete from onboarding.progress where id = $1 returning id",
    &[Type::UUID],
);

/// Reads the caller's progress in one network round trip (the hot path of
/// `GET /api/onboarding/status`).
#[tracing::instrument(level = "debug", skip_all, fields(flow_id))]
pub async fn fetch_own_in_one_trip(
    db: &Database,
    context: &RlsContext,
    flow_id: &str,
) -> Result<Option<ProgressRecord>, DbError> {
    let rows = db.one_trip(context, &FETCH_OWN, &[&flow_id]).await?;
    Ok(rows.first().map(from_row))
}

/// The caller's row for a flow and its answers (step → stored object), in one round trip.
#[tracing::instrument(level = "debug", skip_all, fields(flow_id))]
pub async fn fetch_own_with_answers_in_one_trip(
    db: &Database,
    context: &RlsContext,
    flow_id: &str,
) -> Result<Option<(ProgressRecord, StoredAnswers)>, DbError> {
    let rows = db
        .read_own(context, &FETCH_OWN_WITH_ANSWERS, &[flow_id])
        .await?;
    Ok(rows.first().map(|row| {
        let answers = match row.get::<_, serde_json::Value>("answers") {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        (from_row(row), answers)
    }))
}

/// The caller's own row, locked until the transaction ends: writers of one
/// caller's progress take turns, so two tabs cannot interleave.
pub async fn fetch_own_for_update(
    tx: &Tx<'_>,
    flow_id: &str,
) -> Result<Option<ProgressRecord>, DbError> {
    Ok(tx
        .query_opt(&FETCH_OWN_FOR_UPDATE, &[&flow_id])
        .await?
        .as_ref()
        .map(from_row))
}

/// The caller's row, created if missing, locked until the transaction ends.
pub async fn fetch_or_start_for_update(
    tx: &Tx<'_>,
    flow_id: &str,
    flow_version: i32,
    first_step: &str,
) -> Result<ProgressRecord, DbError> {
    if let Some(record) = fetch_own_for_update(tx, flow_id).await? {
        return Ok(record);
    }
    // A concurrent first write may win the insert; then its row is read.
    start(tx, flow_id, flow_version, first_step).await?;
    fetch_own_for_update(tx, flow_id)
        .await?
        .ok_or(DbError::MissingRow(FETCH_OWN_FOR_UPDATE.sql()))
}

/// Records which steps are complete and where the caller is.
pub async fn record_step(
    tx: &Tx<'_>,
    id: Uuid,
    completed_steps: &[String],
    current_step: &str,
    flow_version: i32,
) -> Result<ProgressRecord, DbError> {
    let row = tx
        .query_one(
            &RECORD_STEP,
            &[&id, &completed_steps, &current_step, &flow_version],
        )
        .await?;
    Ok(from_row(&row))
}

/// Marks the flow completed; `None` when it already was.
pub async fn mark_completed(
    tx: &Tx<'_>,
    id: Uuid,
    organization_id: Option<&str>,
) -> Result<Option<ProgressRecord>, DbError> {
    Ok(tx
        .query_opt(&MARK_COMPLETED, &[&id, &organization_id])
        .await?
        .as_ref()
        .map(from_row))
}

/// The rows of the anonymous session a signed-in caller presents, locked.
pub async fn presented_session_rows(tx: &Tx<'_>) -> Result<Vec<ProgressRecord>, DbError> {
    Ok(tx
        .query(&PRESENTED_SESSION_ROWS, &[])
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// Hands a presented session's row to the signed-in caller.
pub async fn adopt(tx: &Tx<'_>, id: Uuid) -> Result<Option<ProgressRecord>, DbError> {
    Ok(tx.query_opt(&ADOPT, &[&id]).await?.as_ref().map(from_row))
}

/// The caller's own row for a flow.
pub async fn fetch_own(tx: &Tx<'_>, flow_id: &str) -> Result<Option<ProgressRecord>, DbError> {
    Ok(tx
        .query_opt(&FETCH_OWN, &[&flow_id])
        .await?
        .as_ref()
        .map(from_row))
}

/// Every row the policies let the caller see.
pub async fn list_visible(tx: &Tx<'_>) -> Result<Vec<ProgressRecord>, DbError> {
    Ok(tx
        .query(&LIST_VISIBLE, &[])
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// Starts a flow for the caller; `None` when they already have a row for it.
/// The owner columns come from the transaction's context, never from input.
pub async fn start(
    tx: &Tx<'_>,
    flow_id: &str,
    flow_version: i32,
    first_step: &str,
) -> Result<Option<ProgressRecord>, DbError> {
    Ok(tx
        .query_opt(&START, &[&flow_id, &flow_version, &first_step])
        .await?
        .as_ref()
        .map(from_row))
}

/// Moves the caller to `step` if the row is still at `expected_row_version`;
/// `None` when it is not (someone else wrote first) or the caller may not write it.
pub async fn set_current_step(
    tx: &Tx<'_>,
    id: Uuid,
    expected_row_version: i64,
    step: &str,
) -> Result<Option<ProgressRecord>, DbError> {
    Ok(tx
        .query_opt(&SET_CURRENT_STEP, &[&id, &expected_row_version, &step])
        .await?
        .as_ref()
        .map(from_row))
}

/// Deletes a row the caller owns; `false` when there was none they may delete.
pub async fn delete(tx: &Tx<'_>, id: Uuid) -> Result<bool, DbError> {
    Ok(!tx.query(&DELETE, &[&id]).await?.is_empty())
}

#[cfg(test)]
mod tests {
    const COLUMNS: &str = "id, user_id, organization_id, flow_id, flow_version, state, current_step, completed_steps, row_version, updated_at";

    #[test]
    fn every_statement_selects_the_columns_the_row_mapper_reads() {
        for sql in [
            super::FETCH_OWN.sql(),
            super::FETCH_OWN_FOR_UPDATE.sql(),
            super::FETCH_OWN_WITH_ANSWERS.sql(),
            super::FETCH_OWN_WITH_ANSWERS.each_sql().unwrap(),
            super::RECORD_STEP.sql(),
            super::MARK_COMPLETED.sql(),
            super::PRESENTED_SESSION_ROWS.sql(),
            super::ADOPT.sql(),
            super::LIST_VISIBLE.sql(),
            super::START.sql(),
            super::SET_CURRENT_STEP.sql(),
        ] {
            assert!(sql.contains(COLUMNS), "{sql}");
        }
    }
}
