//! After the load: every save the server acknowledged is read back and
//! compared with what the user was told, and the stored analytics events are
//! counted against the acknowledged ones, so a lost or duplicated write fails
//! the run.

use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::Method;
use serde_json::Value;

use crate::load::Shared;
use crate::services::Postgres;
use crate::user::{StepEvent, User};

#[derive(Default)]
pub struct Verification {
    pub acknowledged: usize,
    pub events_stored: u64,
    pub steps_checked: usize,
    pub explained_extra_versions: usize,
    pub problems: Vec<String>,
}

/// Counts the stored analytics events, waiting up to 15 s for the writer to
/// catch up with what was acknowledged (it stores after the response).
pub async fn count_stored_events(pg: &Postgres, acknowledged: u64) -> anyhow::Result<u64> {
    let (client, task) = pg.connect("onboarding").await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let stored = loop {
        let stored: i64 = client
            .query_one("select count(*) from onboarding.analytics_events", &[])
            .await?
            .get(0);
        let stored = u64::try_from(stored)?;
        if stored >= acknowledged || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    task.abort();
    Ok(stored)
}

/// Reads every step a user saved and compares it with what was acknowledged.
pub async fn read_back(shared: &Shared, users: &[User]) -> Verification {
    let mut result = Verification::default();
    for user in users {
        for (step, events) in &user.history {
            let mut last_ack: Option<(i64, &Value)> = None;
            let mut uncertain_since_ack = 0i64;
            for event in events {
                match event {
                    StepEvent::Uncertain => uncertain_since_ack += 1,
                    StepEvent::Ack { version, answers } => {
                        result.acknowledged += 1;
                        let previous = last_ack.map(|(v, _)| v).unwrap_or(0);
                        if *version <= previous {
                            result.problems.push(format!(
                                "{}/{step}: acknowledged version {version} after {previous} (duplicate or reordered)",
                                user.name
                            ));
                        } else if version - previous - 1 > uncertain_since_ack {
                            result.problems.push(format!(
                                "{}/{step}: versions {previous} -> {version} skip more than the {uncertain_since_ack} unacknowledged save(s) explain",
                                user.name
                            ));
                        }
                        last_ack = Some((*version, answers));
                        uncertain_since_ack = 0;
                    }
                }
            }
            let Some((version, answers)) = last_ack else {
                continue;
            };
            result.steps_checked += 1;
            let stored = read_step(shared, user, step).await;
            match stored {
                Err(error) => result
                    .problems
                    .push(format!("{}/{step}: read back failed: {error}", user.name)),
                Ok(view) => {
                    let stored_version = view["version"].as_i64().unwrap_or(-1);
                    if stored_version < version {
                        result.problems.push(format!(
                            "{}/{step}: LOST: stored version {stored_version} < acknowledged {version}",
                            user.name
                        ));
                    } else if stored_version == version {
                        if &view["answers"] != answers {
                            result.problems.push(format!(
                                "{}/{step}: version {version} stores {} but {} was acknowledged",
                                user.name, view["answers"], answers
                            ));
                        }
                    } else if stored_version - version <= uncertain_since_ack {
                        result.explained_extra_versions += (stored_version - version) as usize;
                    } else {
                        result.problems.push(format!(
                            "{}/{step}: stored version {stored_version} > acknowledged {version} with only {uncertain_since_ack} unacknowledged save(s) after it",
                            user.name
                        ));
                    }
                }
            }
        }
    }
    result
}

async fn read_step(shared: &Shared, user: &User, step: &str) -> anyhow::Result<Value> {
    for _ in 0..20 {
        let response = user.step_request(shared, Method::GET, step).send().await?;
        if response.status() == 200 {
            return Ok(response.json().await?);
        }
        if response.status() != 503 {
            bail!("GET answered {}", response.status());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("still 503 after 20 tries")
}
