//! Funnel aggregates over analytics events, for organization admins. The
//! policies on `analytics_events` restrict the rows to the admin's active
//! organization; this only aggregates them.

use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;

use crate::db::{DbError, Statement, Tx};

/// One step's figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepFunnel {
    pub step: String,
    /// Callers with any event on the step.
    pub reached: i64,
    /// Callers who completed it.
    pub completed: i64,
    /// Reached but not completed.
    pub dropped: i64,
    /// Median time from first view to first completion, in seconds.
    pub median_seconds: Option<f64>,
}

const FUNNEL: Statement = Statement::new(
    "with per_subject as (
       select step, coalesce(user_id, session_id) as subject,
              min(occurred_at) filter (where event_type = 'step_viewed') as viewed,
              min(occurred_at) filter (where event_type = 'step_completed') as completed
       from onboarding.analytics_events
       where organization_id = onboarding.current_organization_id()
         and flow_id = $1 and occurred_at >= $2 and occurred_at < $3
         and ($4::int is null or flow_version = $4)
         and step is not null
       group by step, coalesce(user_id, session_id)
     )
     select step, count(*) as reached, count(completed) as completed,
            percentile_cont(0.5) within group (order by extract(epoch from completed - viewed))
              filter (where completed is not null and viewed is not null) as median_seconds
     from per_subject
     group by step",
    &[Type::TEXT, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::INT4],
);

pub async fn by_step(
    tx: &Tx<'_>,
    flow_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    flow_version: Option<i32>,
) -> Result<Vec<StepFunnel>, DbError> {
    Ok(tx
        .query(&FUNNEL, &[&flow_id, &from, &to, &flow_version])
        .await?
        .iter()
        .map(|row| {
            let reached: i64 = row.get("reached");
            let completed: i64 = row.get("completed");
            StepFunnel {
                step: row.get("step"),
                reached,
                completed,
                dropped: reached - completed,
                median_seconds: row.get("median_seconds"),
            }
        })
        .collect())
}
