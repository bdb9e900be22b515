//! Funnel analytics events, written in one statement per batch; see
//! [`super::event_writer`] for how batches are queued and grouped.

use tokio_postgres::types::Type;

use crate::db::{Database, DbError, RlsContext, Statement};

/// Inserts a batch given as a JSON array of `{event_type, step, occurred_at,
/// properties, flow_id, flow_version}`; owner columns come from the context.
const INSERT_BATCH: Statement = Statement::new(
    "insert into onboarding.analytics_events
       (user_id, session_id, organization_id, flow_id, flow_version, step, event_type, properties, occurred_at)
     select onboarding.current_user_id(),
            case when onboarding.current_user_id() is null then onboarding.current_session_id() end,
            case when onboarding.current_user_id() is not null then onboarding.current_organization_id() end,
            e.flow_id, e.flow_version, e.step, e.event_type, coalesce(e.properties, '{}'), e.occurred_at
     from jsonb_to_recordset($1) as e(flow_id text, flow_version int, step text, event_type text,
                                      properties jsonb, occurred_at timestamptz)
     returning id",
    &[Type::JSONB],
);

/// Stores a batch in one round trip; returns how many rows were written.
pub async fn insert_batch(
    db: &Database,
    context: &RlsContext,
    batch: &serde_json::Value,
) -> Result<usize, DbError> {
    Ok(db.one_trip(context, &INSERT_BATCH, &[batch]).await?.len())
}

/// Stores several callers' batches in one transaction and one round trip,
/// each under its own context; returns how many rows each wrote.
pub async fn insert_batches(
    db: &Database,
    batches: &[(&RlsContext, &serde_json::Value)],
) -> Result<Vec<usize>, DbError> {
    let params: Vec<[&(dyn tokio_postgres::types::ToSql + Sync); 1]> =
        batches.iter().map(|(_, batch)| [*batch as _]).collect();
    let items: Vec<(&RlsContext, &[&(dyn tokio_postgres::types::ToSql + Sync)])> = batches
        .iter()
        .zip(&params)
        .map(|((context, _), params)| (*context, &params[..]))
        .collect();
    Ok(db
        .one_trip_each(&INSERT_BATCH, &items)
        .await?
        .into_iter()
        .map(|rows| rows.len())
        .collect())
}
