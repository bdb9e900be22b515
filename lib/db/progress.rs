//! Wizard progress rows: one per owner (a user or an anonymous session) and flow.
//!
//! Which rows a caller reaches is decided by the policies on
//! `onboarding.progress`; the `where` clauses here only pick, among the rows
//! the caller may see, the one that is their own (an organization admin also
//! sees their members' rows).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};
use uuid::Uuid;

use crate::db::answers::{self, NewAnswer, StoredAnswer, Write};
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

/// The progress row's columns, in the order [`with_columns!`] selects them.
const COLUMNS: [&str; 10] = [
    "id",
    "user_id",
    "organization_id",
    "flow_id",
    "flow_version",
    "state",
    "current_step",
    "completed_steps",
    "row_version",
    "updated_at",
];

/// The record from a row that holds [`COLUMNS`] in that order, from `id` on
/// (a batched read's `ord` comes first; answer columns may follow).
///
/// By position: looked up by name, each of the ten columns compared names
/// with the columns before it, on every read (`scripts/count-instructions`:
/// 103,093 → 102,369 per status miss).
fn from_row(row: &Row) -> ProgressRecord {
    let columns = row.columns();
    let first = columns
        .iter()
        .position(|column| column.name() == COLUMNS[0])
        .expect("a progress row selects `id`");
    debug_assert!(
        COLUMNS
            .iter()
            .zip(&columns[first..])
            .all(|(name, column)| column.name() == *name),
        "a progress row's columns are in the order of `COLUMNS`"
    );
    ProgressRecord {
        id: row.get(first),
        user_id: row.get(first + 1),
        organization_id: row.get(first + 2),
        flow_id: row.get(first + 3),
        flow_version: row.get(first + 4),
        state: ProgressState::parse(row.get(first + 5)),
        current_step: row.get(first + 6),
        completed_steps: row.get(first + 7),
        row_version: row.get(first + 8),
        updated_at: row.get(first + 9),
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

/// A select of every column of `onboarding.progress_with_answer` (the
/// progress row's, then an answer's) from `$from`.
macro_rules! with_answer_columns {
    ($from:literal) => {
        with_columns!(
            "select",
            ", step, answers, status, answer_flow_version, version, answer_updated_at ",
            $from
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

/// The caller's own row, locked (the merge locks the signed-in row with it;
/// a save locks and reads its answers in one call, [`FETCH_OWN_FOR_UPDATE_WITH_ANSWERS`]).
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
)
.when_unnamed(with_columns!(
    "select",
    "from onboarding.own_progress_for_update($1)"
));

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

/// The caller's own row locked, and every answer of it read once the lock
/// is held (see [`fetch_own_for_update_with_answers`]): one row per answer,
/// or one with no answer.
pub const FETCH_OWN_FOR_UPDATE_WITH_ANSWERS: Statement = Statement::new(
    with_answer_columns!("from onboarding.own_progress_for_update_with_answers($1)"),
    &[Type::TEXT],
);

/// A save's answer and the steps it records (see [`store_answer_and_record_step`]).
pub const STORE_ANSWER_AND_RECORD_STEP: Statement = Statement::new(
    with_answer_columns!(
        "from onboarding.store_answer_and_record_step($1, $2, $3, $4, $5, $6, $7, $8)"
    ),
    &[
        Type::UUID,
        Type::TEXT,
        Type::JSONB,
        Type::TEXT,
        Type::INT4,
        Type::INT8,
        Type::TEXT_ARRAY,
        Type::TEXT,
    ],
);

/// Records the completed steps and the current one (the merge; a save records
/// them in the call that stores its answer, [`STORE_ANSWER_AND_RECORD_STEP`]).
pub const RECORD_STEP: Statement = Statement::new(
    with_columns!(
        "update onboarding.progress
         set completed_steps = $2, current_step = $3, flow_version = $4, row_version = row_version + 1
         where id = $1
         returning",
        ""
    ),
    &[Type::UUID, Type::TEXT_ARRAY, Type::TEXT, Type::INT4],
)
.when_unnamed(with_columns!(
    "select",
    "from onboarding.record_step($1, $2, $3, $4)"
));

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

/// The caller's row for a flow and the answers (step → stored object) of
/// the steps `wanted` accepts, in one round trip. The other steps' answers
/// are skipped unparsed: the status read needs only those its conditions
/// read, and parsing the rest cost allocations for nothing.
#[tracing::instrument(level = "debug", skip_all, fields(flow_id))]
pub async fn fetch_own_with_answers_in_one_trip(
    db: &Database,
    context: &RlsContext,
    flow_id: &str,
    wanted: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Option<(ProgressRecord, StoredAnswers)>, DbError> {
    let rows = db
        .read_own(context, &FETCH_OWN_WITH_ANSWERS, &[flow_id])
        .await?;
    Ok(rows.first().map(|row| {
        let JsonText(answers) = row.get("answers");
        (from_row(row), answers_of_steps(answers, wanted))
    }))
}

/// The steps' answers `wanted` accepts, from the JSON object of answers by
/// step; empty for anything else, which the query never returns.
fn answers_of_steps(json: &[u8], wanted: &dyn Fn(&str) -> bool) -> StoredAnswers {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    deserializer
        .deserialize_map(StepsWanted(wanted))
        .unwrap_or_default()
}

/// A `json` or `jsonb` column as its JSON text, borrowed from the row.
struct JsonText<'a>(&'a [u8]);

impl<'a> FromSql<'a> for JsonText<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        if *ty != Type::JSONB {
            return Ok(JsonText(raw));
        }
        // jsonb's binary form: a version byte, then the text.
        match raw.split_first() {
            Some((1, text)) => Ok(JsonText(text)),
            _ => Err("unsupported jsonb version".into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }
}

/// Reads an object of answers by step, keeping the steps it accepts.
struct StepsWanted<'w>(&'w dyn Fn(&str) -> bool);

impl<'de> Visitor<'de> for StepsWanted<'_> {
    type Value = StoredAnswers;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object of answers by step")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StoredAnswers, A::Error> {
        let mut kept = StoredAnswers::new();
        while let Some(StepKey(step)) = map.next_key()? {
            if (self.0)(&step) {
                kept.insert(step.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(kept)
    }
}

/// A step id, borrowed from the JSON text unless it holds an escape.
#[derive(Deserialize)]
#[serde(transparent)]
struct StepKey<'a>(#[serde(borrow)] Cow<'a, str>);

/// The caller's own row, locked until the transaction ends: writers of one
/// caller's progress take turns, so two tabs cannot interleave.
pub async fn fetch_own_for_update(
    tx: &Tx<'_>,
    flow_id: &str,
) -> Result<Option<ProgressRecord>, DbError> {
    tx.query_opt_as(&FETCH_OWN_FOR_UPDATE, &[&flow_id], from_row)
        .await
}

/// The caller's own row, locked until the transaction ends, and every
/// answer of it, by step: one call of
/// `onboarding.own_progress_for_update_with_answers`, whose answers are read
/// by a statement of their own once the lock is held, so they include
/// whatever the lock's previous holder (another tab's save) committed.
pub async fn fetch_own_for_update_with_answers(
    tx: &Tx<'_>,
    flow_id: &str,
) -> Result<Option<(ProgressRecord, BTreeMap<String, StoredAnswer>)>, DbError> {
    let rows = tx
        .query(&FETCH_OWN_FOR_UPDATE_WITH_ANSWERS, &[&flow_id])
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    // A row without an answer stands for a progress row with none.
    let answers = rows
        .iter()
        .filter(|row| row.get::<_, Option<&str>>("step").is_some())
        .map(|row| {
            let answer = answers::from_progress_with_answer(row);
            (answer.step.clone(), answer)
        })
        .collect();
    Ok(Some((from_row(first), answers)))
}

/// The caller's row, created if missing, locked until the transaction ends,
/// and its answers ([`fetch_own_for_update_with_answers`]).
pub async fn fetch_or_start_for_update_with_answers(
    tx: &Tx<'_>,
    flow_id: &str,
    flow_version: i32,
    first_step: &str,
) -> Result<(ProgressRecord, BTreeMap<String, StoredAnswer>), DbError> {
    if let Some(locked) = fetch_own_for_update_with_answers(tx, flow_id).await? {
        return Ok(locked);
    }
    // A concurrent first write may win the insert; then its row, and
    // whatever that write stored, is read.
    start(tx, flow_id, flow_version, first_step).await?;
    fetch_own_for_update_with_answers(tx, flow_id)
        .await?
        .ok_or(DbError::MissingRow(FETCH_OWN_FOR_UPDATE_WITH_ANSWERS.sql()))
}

/// The steps a save records beside its answer.
pub struct RecordedSteps<'a> {
    pub completed_steps: &'a [String],
    pub current_step: &'a str,
}

/// Stores `answer` under its precondition and, only when it was stored,
/// records `steps`: one call of `onboarding.store_answer_and_record_step`.
/// `None` when the precondition no longer holds (nothing was written).
pub async fn store_answer_and_record_step(
    tx: &Tx<'_>,
    progress_id: Uuid,
    flow_version: i32,
    answer: NewAnswer<'_>,
    steps: RecordedSteps<'_>,
) -> Result<Option<(StoredAnswer, ProgressRecord)>, DbError> {
    let expected_version = match answer.write {
        Write::Insert => None,
        Write::ReplaceAt(version) => Some(version),
    };
    let row = tx
        .query_opt(
            &STORE_ANSWER_AND_RECORD_STEP,
            &[
                &progress_id,
                &answer.step,
                answer.answers,
                &answers::status_of(answer.completed),
                &flow_version,
                &expected_version,
                &steps.completed_steps,
                &steps.current_step,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    // The answer was stored but the caller may not update the row.
    if row.get::<_, Option<Uuid>>("id").is_none() {
        return Err(DbError::MissingRow(STORE_ANSWER_AND_RECORD_STEP.sql()));
    }
    let stored = answers::from_progress_with_answer(&row);
    Ok(Some((stored, from_row(&row))))
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
    tx.query_opt_as(&MARK_COMPLETED, &[&id, &organization_id], from_row)
        .await
}

/// The rows of the anonymous session a signed-in caller presents, locked.
pub async fn presented_session_rows(tx: &Tx<'_>) -> Result<Vec<ProgressRecord>, DbError> {
    tx.query_as(&PRESENTED_SESSION_ROWS, &[], from_row).await
}

/// Hands a presented session's row to the signed-in caller.
pub async fn adopt(tx: &Tx<'_>, id: Uuid) -> Result<Option<ProgressRecord>, DbError> {
    tx.query_opt_as(&ADOPT, &[&id], from_row).await
}

/// The caller's own row for a flow.
pub async fn fetch_own(tx: &Tx<'_>, flow_id: &str) -> Result<Option<ProgressRecord>, DbError> {
    tx.query_opt_as(&FETCH_OWN, &[&flow_id], from_row).await
}

/// Every row the policies let the caller see.
pub async fn list_visible(tx: &Tx<'_>) -> Result<Vec<ProgressRecord>, DbError> {
    tx.query_as(&LIST_VISIBLE, &[], from_row).await
}

/// Starts a flow for the caller; `None` when they already have a row for it.
/// The owner columns come from the transaction's context, never from input.
pub async fn start(
    tx: &Tx<'_>,
    flow_id: &str,
    flow_version: i32,
    first_step: &str,
) -> Result<Option<ProgressRecord>, DbError> {
    tx.query_opt_as(&START, &[&flow_id, &flow_version, &first_step], from_row)
        .await
}

/// Moves the caller to `step` if the row is still at `expected_row_version`;
/// `None` when it is not (someone else wrote first) or the caller may not write it.
pub async fn set_current_step(
    tx: &Tx<'_>,
    id: Uuid,
    expected_row_version: i64,
    step: &str,
) -> Result<Option<ProgressRecord>, DbError> {
    tx.query_opt_as(
        &SET_CURRENT_STEP,
        &[&id, &expected_row_version, &step],
        from_row,
    )
    .await
}

/// Deletes a row the caller owns; `false` when there was none they may delete.
pub async fn delete(tx: &Tx<'_>, id: Uuid) -> Result<bool, DbError> {
    Ok(!tx.query(&DELETE, &[&id]).await?.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_statement_selects_the_columns_the_row_mapper_reads() {
        // In the mapper's order: it reads them by position.
        let columns = COLUMNS.join(", ");
        assert_eq!(
            columns,
            "id, user_id, organization_id, flow_id, flow_version, state, current_step, completed_steps, row_version, updated_at"
        );
        for sql in [
            super::FETCH_OWN.sql(),
            super::FETCH_OWN_FOR_UPDATE.sql(),
            super::FETCH_OWN_FOR_UPDATE.unnamed_sql().unwrap(),
            super::FETCH_OWN_FOR_UPDATE_WITH_ANSWERS.sql(),
            super::STORE_ANSWER_AND_RECORD_STEP.sql(),
            super::RECORD_STEP.unnamed_sql().unwrap(),
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
            assert!(sql.contains(&columns), "{sql}");
        }
    }

    #[test]
    fn only_the_wanted_steps_answers_are_read_escaped_or_not() {
        let json = br#"{"organization": {"size": "1"}, "profile": {"name": "A \"quoted\" name", "tags": [1, {"x": null}]}, "te\u0061m": {"invites": []}}"#;
        let wanted = |step: &str| step == "organization" || step == "team";
        let answers = answers_of_steps(json, &wanted);
        assert_eq!(
            serde_json::Value::Object(answers),
            json!({"organization": {"size": "1"}, "team": {"invites": []}})
        );
        let all = answers_of_steps(json, &|_| true);
        assert_eq!(all.len(), 3);
        assert_eq!(all["profile"]["name"], "A \"quoted\" name");
        assert!(answers_of_steps(json, &|_| false).is_empty());
    }

    #[test]
    fn answers_that_are_not_an_object_of_steps_read_as_none() {
        for json in [&b"null"[..], b"[]", b"\"text\"", b"{\"step\": }"] {
            assert!(answers_of_steps(json, &|_| true).is_empty());
        }
    }

    #[test]
    fn a_jsonb_column_is_its_text_after_the_version_byte() {
        let JsonText(text) = JsonText::from_sql(&Type::JSONB, b"\x01{}").unwrap();
        assert_eq!(text, b"{}");
        assert!(JsonText::from_sql(&Type::JSONB, b"\x02{}").is_err());
        assert!(JsonText::from_sql(&Type::JSONB, b"").is_err());
        let JsonText(text) = JsonText::from_sql(&Type::JSON, b"{}").unwrap();
        assert_eq!(text, b"{}");
        assert!(!<JsonText as FromSql>::accepts(&Type::TEXT));
    }
}
