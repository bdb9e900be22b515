//! Fault injection during the load (the AI provider hanging then failing,
//! Redis stopped, PostgreSQL stopped) and the health watching that shows how
//! the API noticed each outage and how fast it recovered.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Args;
use crate::ai_provider::{AI_ERROR, AI_HANG, AI_OK};
use crate::load::Shared;
use crate::services::{Postgres, Redis, wait_until};
use crate::webhooks::{RECEIVER_FAILING, RECEIVER_HANGING, RECEIVER_OK};

/// How long PostgreSQL may take, once it accepts connections again, until a save succeeds.
pub const PG_RECOVERY_BUDGET: Duration = Duration::from_secs(5);
/// How long Redis may take, once it answers again, until health reports it up.
pub const REDIS_RECOVERY_BUDGET: Duration = Duration::from_secs(15);

#[derive(Default)]
pub struct Faults {
    pub injected: Vec<String>,
    pub redis_recovery: Option<Duration>,
    pub redis_degraded_seen: bool,
    pub pg_stopped_at: Option<Instant>,
    pub pg_back_at: Option<Instant>,
    pub pg_recovery: Option<Duration>,
    pub health_503_outside: usize,
}

/// Prints a line of the fault timeline, `what` happening now.
fn timeline(started: Instant, what: &str) {
    println!("   t={:>5.1}s {what}", started.elapsed().as_secs_f64());
}

/// Redis down for `redis_down` from ~10% of the load, then PostgreSQL down for
/// `pg_down`; health is polled throughout.
pub async fn inject(
    args: &Args,
    shared: &Arc<Shared>,
    pg: &Postgres,
    redis: &mut Redis,
    started: Instant,
) -> anyhow::Result<Faults> {
    let mut faults = Faults::default();
    let health = tokio::spawn(watch_health(Arc::clone(shared)));
    // The AI provider hangs, then errors, from a quarter into the load; the
    // wizard's routes must not notice and suggest must degrade, not fail.
    let ai_fault = {
        let shared = Arc::clone(shared);
        let at = started + Duration::from_secs(args.seconds / 4);
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            timeline(started, "AI provider hangs");
            shared.ai_mode.store(AI_HANG, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(3)).await;
            timeline(started, "AI provider answers 500");
            shared.ai_mode.store(AI_ERROR, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(3)).await;
            shared.ai_mode.store(AI_OK, Ordering::Relaxed);
            "AI provider hanging for 3s, then answering 500 for 3s".to_string()
        })
    };

    // The outbox's webhook receiver fails, then hangs, from 60% into the
    // load: deliveries retry, and no route may wait for them.
    let receiver_fault = {
        let shared = Arc::clone(shared);
        let at = started + Duration::from_secs(args.seconds * 6 / 10);
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            timeline(started, "webhook receiver answers 503");
            shared
                .receiver_mode
                .store(RECEIVER_FAILING, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(3)).await;
            timeline(started, "webhook receiver hangs");
            shared
                .receiver_mode
                .store(RECEIVER_HANGING, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(3)).await;
            shared.receiver_mode.store(RECEIVER_OK, Ordering::Relaxed);
            "webhook receiver answering 503 for 3s, then hanging for 3s".to_string()
        })
    };

    tokio::time::sleep_until((started + Duration::from_secs(args.seconds / 10)).into()).await;
    timeline(started, "stop Redis");
    redis.stop();
    faults
        .injected
        .push(format!("Redis stopped for {:?}", args.redis_down));
    let redis_stopped = Instant::now();
    tokio::time::sleep(args.redis_down).await;
    let redis_back = redis.start_answering().await?;
    timeline(started, "Redis answers again");

    // PostgreSQL: stop after the Redis recovery had a moment, or at mid-load.
    let pg_at =
        (redis_back + Duration::from_secs(2)).max(started + Duration::from_secs(args.seconds / 2));
    tokio::time::sleep_until(pg_at.into()).await;
    timeline(started, "stop PostgreSQL (-m fast)");
    let pg_stopped = Instant::now();
    pg.stop()?;
    faults.injected.push(format!(
        "PostgreSQL stopped for {:?} (pg_ctl stop -m fast, start)",
        args.pg_down
    ));
    tokio::time::sleep(args.pg_down).await;
    pg.start()?;
    let pg_back = wait_until("PostgreSQL", Duration::from_secs(30), || pg.accepting()).await?;
    *shared.pg_back.lock().unwrap() = Some(pg_back);
    timeline(started, "PostgreSQL accepts connections");
    faults.pg_stopped_at = Some(pg_stopped);
    faults.pg_back_at = Some(pg_back);

    // Keep the load going until recovery had its budget, even past --seconds.
    tokio::time::sleep_until(
        (shared
            .deadline
            .max(pg_back + PG_RECOVERY_BUDGET + Duration::from_secs(1)))
        .into(),
    )
    .await;
    for fault in [ai_fault, receiver_fault] {
        if let Ok(injected) = fault.await {
            faults.injected.push(injected);
        }
    }
    let samples = health.await.unwrap_or_default();

    faults.pg_recovery = shared
        .log
        .lock()
        .unwrap()
        .first_save_after
        .iter()
        .min()
        .map(|at| at.saturating_duration_since(pg_back));
    faults.redis_degraded_seen = samples
        .iter()
        .any(|(at, _, redis)| *at > redis_stopped && *at < redis_back && redis == "down");
    faults.redis_recovery = samples
        .iter()
        .filter(|(at, _, redis)| *at >= redis_back && redis == "up")
        .map(|(at, _, _)| at.saturating_duration_since(redis_back))
        .min();
    let window_end = pg_back + PG_RECOVERY_BUDGET;
    faults.health_503_outside = samples
        .iter()
        .filter(|(at, status, _)| *status == 503 && (*at < pg_stopped || *at > window_end))
        .count();
    Ok(faults)
}

/// Polls `/api/health` every 250 ms until the load ends: (when, status, redis state).
async fn watch_health(shared: Arc<Shared>) -> Vec<(Instant, u16, String)> {
    let mut samples = Vec::new();
    let end = shared.deadline + Duration::from_secs(30);
    while Instant::now() < end && samples.len() < 2000 {
        let sent = Instant::now();
        if let Ok(response) = shared
            .client
            .get(format!("{}/api/health", shared.base))
            .send()
            .await
        {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            let redis = body["checks"]["redis"]["status"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            samples.push((sent, status, redis));
        }
        if Instant::now() >= shared.deadline && shared.pg_back.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    samples
}
