//! What a `step_completed` event adds to a save: pgbench's write with the
//! event (`outbox::ENQUEUE` pipelined with the progress update, as
//! `wizard::save` sends it) beside the plain write, in pairs, each pair in
//! the other order from the one before: one run of each measured the
//! machine's drift between them as much as the insert (README: Latest
//! figures). Each run starts from a checkpoint: the first writes to a page
//! after one log the whole page, so a run right after a checkpoint (the
//! first after the database was prepared) paid for more WAL than the next,
//! and a checkpoint that fell inside one run slowed that run alone.

use crate::database::Database;
use crate::pgbench::{self, PgbenchResult};

/// The runs of each kind, pair by pair.
pub struct Pairs {
    pub with_event: Vec<PgbenchResult>,
    pub beside_event: Vec<PgbenchResult>,
}

/// What the event adds to a write's time, pair by pair: the plain write's
/// throughput over the one with the event, less one.
pub fn costs(beside_event: &[PgbenchResult], with_event: &[PgbenchResult]) -> Vec<f64> {
    beside_event
        .iter()
        .zip(with_event)
        .map(|(plain, with_event)| plain.tps / with_event.tps - 1.0)
        .collect()
}

/// The pairs' costs as printed: `0.25 / 0.18 / 0.32`.
pub fn listed(costs: &[f64]) -> String {
    costs
        .iter()
        .map(|cost| format!("{cost:.2}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// `pairs` pairs of runs, `run(name, script)` running one pgbench; every
/// run with the event must leave one event per transaction in the outbox.
pub async fn pairs(
    db: &Database,
    pairs: usize,
    run: impl Fn(&str, &str) -> anyhow::Result<PgbenchResult>,
) -> anyhow::Result<(Pairs, (i64, i64))> {
    let events_before = db.outbox_events().await?;
    let write_script = pgbench::write_script();
    let event_script = pgbench::write_with_event_script();
    let mut measured = Pairs {
        with_event: Vec::new(),
        beside_event: Vec::new(),
    };
    for pair in 1..=pairs {
        let event_first = pair % 2 == 1;
        for with_event in [event_first, !event_first] {
            db.checkpoint().await?;
            if with_event {
                let result = run(&format!("write-event-{pair}"), &event_script)?;
                result.print("write + event");
                measured.with_event.push(result);
            } else {
                let result = run(&format!("write-c{pair}"), &write_script)?;
                result.print("pgbench write");
                measured.beside_event.push(result);
            }
        }
    }
    let acknowledged = measured.with_event.iter().map(|run| run.transactions).sum();
    let stored = db.outbox_events().await? - events_before;
    Ok((measured, (acknowledged, stored)))
}
