//! The verdict: every figure the run gathered, held against its bound (5xx
//! only as 503 + Retry-After during the database outage, recovery budgets,
//! no loss, no panic, hostile input refused), printed as a summary ending in
//! `RESULT PASS` or `RESULT FAIL` with the reasons.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::PANICS;
use crate::faults::{Faults, PG_RECOVERY_BUDGET, REDIS_RECOVERY_BUDGET};
use crate::hostile::Hostile;
use crate::lifecycle::Lifecycle;
use crate::load::{ServerError, Shared};
use crate::verify::Verification;

/// A recovery time as printed, or "never" when there was none.
fn seconds_or_never(recovery: Option<Duration>) -> String {
    recovery
        .map(|d| format!("{:.2} s", d.as_secs_f64()))
        .unwrap_or("never".into())
}

/// Prints the summary; whether the run passed.
pub fn print(
    shared: &Shared,
    faults: &Faults,
    verification: &Verification,
    hostile: &Hostile,
    lifecycle: &Lifecycle,
    load_seconds: f64,
    server_alive: bool,
) -> bool {
    let c = &shared.counters;
    let log = shared.log.lock().unwrap();
    let (pg_stopped, pg_back) = (
        faults.pg_stopped_at.expect("PostgreSQL was restarted"),
        faults.pg_back_at.expect("PostgreSQL came back"),
    );
    let window_end = pg_back + PG_RECOVERY_BUDGET;
    let in_outage = |at: Instant| at >= pg_stopped && at <= window_end;
    // The only 5xx allowed: a 503 with Retry-After while the database is away.
    let outage_503 = |e: &ServerError| e.status == 503 && e.retry_after && in_outage(e.at);
    let outage_503_count = log.server_errors.iter().filter(|e| outage_503(e)).count();
    let after_back_503 = log
        .server_errors
        .iter()
        .filter(|e| e.status == 503 && e.at > pg_back && e.at <= window_end)
        .count();
    let other_5xx: Vec<&ServerError> = log
        .server_errors
        .iter()
        .filter(|e| !outage_503(e))
        .collect();
    let panics = PANICS.load(Ordering::SeqCst);

    let mut failures: Vec<String> = Vec::new();
    for e in &other_5xx {
        failures.push(format!(
            "{} on {} outside the database outage (or without Retry-After: {})",
            e.status, e.what, e.retry_after
        ));
    }
    failures.extend(log.problems.iter().cloned());
    failures.extend(verification.problems.iter().cloned());
    failures.extend(hostile.failures.iter().cloned());
    failures.extend(lifecycle.failures.iter().cloned());
    for (_, what) in &log.transport_errors {
        failures.push(format!("transport error: {what}"));
    }
    match faults.pg_recovery {
        Some(recovery) if recovery <= PG_RECOVERY_BUDGET => {}
        Some(recovery) => failures.push(format!(
            "first save after PostgreSQL came back took {recovery:?} (> {PG_RECOVERY_BUDGET:?})"
        )),
        None => failures.push("no save succeeded after PostgreSQL came back".into()),
    }
    if !faults.redis_degraded_seen {
        failures.push("health never reported Redis down during its outage".into());
    }
    match faults.redis_recovery {
        Some(recovery) if recovery <= REDIS_RECOVERY_BUDGET => {}
        other => failures.push(format!(
            "health did not report Redis up again within {REDIS_RECOVERY_BUDGET:?} ({other:?})"
        )),
    }
    if faults.health_503_outside > 0 {
        failures.push(format!(
            "{} health 503s outside the database outage",
            faults.health_503_outside
        ));
    }
    if panics > 0 {
        failures.push(format!("{panics} panic(s) in the process"));
    }
    if c.ai_suggested.load(Ordering::Relaxed) == 0 {
        failures.push("no AI suggestion was made (was the provider path exercised?)".into());
    }
    if c.ai_unavailable.load(Ordering::Relaxed) == 0 {
        failures.push("suggest never degraded while the AI provider was down".into());
    }
    if !server_alive {
        failures.push("the server task ended".into());
    }
    if outage_503_count == 0 {
        failures
            .push("no 503 was seen while PostgreSQL was down (was the outage exercised?)".into());
    }

    let requests = c.requests.load(Ordering::Relaxed);
    println!();
    println!("== reliability summary");
    println!(
        "load               {load_seconds:.1} s, {requests} requests ({:.0}/s)",
        requests as f64 / load_seconds
    );
    println!(
        "  saves            {} acknowledged ({} idempotent replays), {} retries, {} simulated timeouts, {} given up",
        c.saves_acknowledged.load(Ordering::Relaxed),
        c.replays.load(Ordering::Relaxed),
        c.retries.load(Ordering::Relaxed),
        c.simulated_timeouts.load(Ordering::Relaxed),
        c.given_up.load(Ordering::Relaxed),
    );
    println!(
        "  412              {} for stale If-Match (expected), {} on a retry racing its own abandoned attempt",
        c.stale_412.load(Ordering::Relaxed),
        c.refresh_412.load(Ordering::Relaxed),
    );
    println!(
        "  reads/events     {} status reads, {} event batches",
        c.status_reads.load(Ordering::Relaxed),
        c.events.load(Ordering::Relaxed)
    );
    println!(
        "  AI suggest       {} suggestions, {} answered unavailable (provider down or its circuit open)",
        c.ai_suggested.load(Ordering::Relaxed),
        c.ai_unavailable.load(Ordering::Relaxed)
    );
    println!(
        "  events stored    {} of {} acknowledged",
        verification.events_stored,
        c.events_acknowledged.load(Ordering::Relaxed)
    );
    println!(
        "verified           {} acknowledged writes over {} user/steps read back; {} later unacknowledged version(s) explained by unknown outcomes",
        verification.acknowledged,
        verification.steps_checked,
        verification.explained_extra_versions
    );
    println!("faults injected    {}", faults.injected.join("; "));
    println!(
        "5xx                {} during the database outage (503 + Retry-After; {} of them after it accepted connections again), {} otherwise",
        outage_503_count,
        after_back_503,
        other_5xx.len()
    );
    println!(
        "recovery           PostgreSQL: first save {} after it accepted connections (budget {:?}); Redis: health up {} after restart, degraded seen: {}",
        seconds_or_never(faults.pg_recovery),
        PG_RECOVERY_BUDGET,
        seconds_or_never(faults.redis_recovery),
        faults.redis_degraded_seen,
    );
    println!(
        "hostile input      {} bad tokens/bodies tried, {} wrong answers",
        hostile.tried,
        hostile.failures.len()
    );
    for line in &lifecycle.lines {
        println!("{line}");
    }
    println!("transport errors   {}", log.transport_errors.len());
    println!("panics             {panics}");
    if failures.is_empty() {
        println!("RESULT             PASS");
        true
    } else {
        println!("RESULT             FAIL ({} problem(s)):", failures.len());
        for failure in failures.iter().take(60) {
            println!("  - {failure}");
        }
        if failures.len() > 60 {
            println!("  ... and {} more", failures.len() - 60);
        }
        false
    }
}
