//! The data's whole life under load: expired rows seeded before the load are
//! purged by the cron route while it runs (and nothing live goes with them), a
//! user erases themselves while it runs (and nothing of them is left), and an
//! anonymous flood against an instance with the default limits stores no more
//! than those limits allow, whether it forges forwarding headers or not.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_postgres::Client;

use crate::services::Postgres;

/// The cron secret the in-process API is configured with.
pub const CRON_SECRET: &str = "reliability-cron-secret-0123456789";
/// Expired sessions (each with a draft of two answers) seeded before the load.
const EXPIRED_SESSIONS: i64 = 200;
/// How long each flood runs.
const FLOOD: Duration = Duration::from_secs(4);
/// The defaults the flood runs against (README: environment variables).
const SESSIONS_PER_IP: i64 = 20;
const EVENTS_PER_IP: i64 = 600;

#[derive(Default)]
pub struct Lifecycle {
    pub lines: Vec<String>,
    pub failures: Vec<String>,
}

/// Seeds rows past their retention: expired sessions with drafts.
pub async fn seed_expired(pg: &Postgres) -> anyhow::Result<()> {
    let (client, task) = pg.connect("onboarding").await?;
    client
        .batch_execute(&format!(
            "insert into onboarding.anonymous_sessions (id_hash, expires_at, created_at, last_seen_at)
             select encode(sha256(('reliability-expired-' || i)::bytea), 'hex'),
                    now() - interval '1 day', now() - interval '31 days', now() - interval '30 days'
             from generate_series(1, {EXPIRED_SESSIONS}) i;
             insert into onboarding.progress (session_id, flow_id, flow_version)
             select id_hash, 'default', 1 from onboarding.anonymous_sessions where expires_at < now();
             insert into onboarding.step_answers (progress_id, step, answers, flow_version)
             select p.id, step, '{{}}', 1
             from onboarding.progress p, unnest(array['profile', 'goals']) step
             where p.session_id is not null"
        ))
        .await
        .context("Failed to seed expired sessions")?;
    task.abort();
    Ok(())
}

/// The user who leaves during the load.
const LEAVER: &str = "rel_leaver";

/// The leaver's data before the load: a completed step, a draft, events and
/// an AI choice. Returns their token.
pub async fn prepare_leaver(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let token = crate::tokens::hs_token(&crate::tokens::claims(LEAVER));
    let writes = [
        (
            reqwest::Method::PUT,
            "/api/onboarding/steps/profile",
            json!({ "answers": { "fullName": "Leaving Soon", "jobRole": "founder" }, "complete": true }),
        ),
        (
            reqwest::Method::PUT,
            "/api/onboarding/steps/goals",
            json!({ "answers": { "primaryGoal": "leaving" } }),
        ),
        (
            reqwest::Method::POST,
            "/api/onboarding/events",
            json!({ "events": [{ "type": "step_viewed", "step": "profile" }] }),
        ),
        (
            reqwest::Method::PUT,
            "/api/onboarding/ai/preferences",
            json!({ "mode": "suggest", "consentVersion": "v1" }),
        ),
    ];
    for (method, path, body) in writes {
        let response = client
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "the leaver's {method} {path} answered {}",
            response.status()
        );
    }
    Ok(token)
}

/// Sends `request` (the purge as Vercel's cron sends it, or the leaver's
/// erasure) once `after` has passed; its JSON body when it answers 200.
pub async fn call_during_load(
    request: reqwest::RequestBuilder,
    after: Duration,
    what: &'static str,
) -> Result<Value, String> {
    tokio::time::sleep(after).await;
    let response = request
        .send()
        .await
        .map_err(|error| format!("{what} request failed: {error}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != StatusCode::OK {
        return Err(format!("{what} during the load answered {status}: {body}"));
    }
    Ok(body)
}

/// Checks, as the superuser, what the purge and the erasure called during
/// the load did; a call that failed is recorded as a failure, not checked.
pub async fn check_purge_and_erasure(
    pg: &Postgres,
    purged: Result<Value, String>,
    erased: Result<Value, String>,
    result: &mut Lifecycle,
) -> anyhow::Result<()> {
    let (client, task) = pg.connect("onboarding").await?;
    if let Some(body) = result.answered(purged) {
        result.check_purge(&client, &body).await?;
    }
    if let Some(body) = result.answered(erased) {
        result.check_erasure(&client, &body).await?;
    }
    task.abort();
    Ok(())
}

impl Lifecycle {
    /// The body of a call made during the load, or `None` with its failure recorded.
    fn answered(&mut self, outcome: Result<Value, String>) -> Option<Value> {
        outcome.map_err(|problem| self.failures.push(problem)).ok()
    }

    /// Nothing of the leaver in any column that names a user, in any table of
    /// the schema (the columns are listed from the catalog, so a new table is
    /// not forgotten), checked as the superuser.
    async fn check_erasure(&mut self, client: &Client, body: &Value) -> anyhow::Result<()> {
        let columns = client
            .query(
                "select table_name::text, column_name::text from information_schema.columns
                 where table_schema = 'onboarding' and data_type = 'text'
                   and column_name in ('user_id', 'created_by', 'invited_by', 'updated_by', 'merged_into_user_id')
                 order by 1, 2",
                &[],
            )
            .await?;
        let mut left = Vec::new();
        for row in &columns {
            let (table, column): (String, String) = (row.get(0), row.get(1));
            let sql = format!("select count(*) from onboarding.{table} where {column} = $1");
            let count: i64 = client.query_one(&sql, &[&LEAVER]).await?.get(0);
            if count > 0 {
                left.push(format!("{table}.{column}: {count}"));
            }
        }
        let deleted: i64 = body["deleted"]
            .as_object()
            .map(|tables| tables.values().filter_map(Value::as_i64).sum())
            .unwrap_or(0);
        self.lines.push(format!(
            "erasure during load {deleted} rows of {LEAVER} deleted; {} columns that name a user checked, {} still naming them",
            columns.len(),
            left.len()
        ));
        if deleted == 0 {
            self.failures
                .push("the erasure during the load deleted nothing".into());
        }
        if !left.is_empty() {
            self.failures.push(format!(
                "after the erasure {LEAVER} is still in {}",
                left.join(", ")
            ));
        }
        Ok(())
    }

    /// What the purge left: every seeded expired session gone (a purge that ran
    /// out of time would say `complete: false`), no live session lost.
    async fn check_purge(&mut self, client: &Client, body: &Value) -> anyhow::Result<()> {
        let left: i64 = client
            .query_one(
                "select count(*) from onboarding.anonymous_sessions where id_hash in
                   (select encode(sha256(('reliability-expired-' || i)::bytea), 'hex')
                    from generate_series(1, $1::bigint) i)",
                &[&EXPIRED_SESSIONS],
            )
            .await?
            .get(0);
        let orphans: i64 = client
            .query_one(
                "select count(*) from onboarding.progress p
                 where p.session_id is not null
                   and not exists (select 1 from onboarding.anonymous_sessions s where s.id_hash = p.session_id)",
                &[],
            )
            .await?
            .get(0);
        let purged = body["sessions"].as_i64().unwrap_or(-1);
        self.lines.push(format!(
            "purge during load  {purged} expired sessions deleted (of {EXPIRED_SESSIONS} seeded), complete: {}, {left} seeded left, {orphans} drafts without a session",
            body["complete"]
        ));
        if body["complete"] == json!(true) && left != 0 {
            self.failures.push(format!(
                "the purge said complete but {left} expired sessions are left"
            ));
        }
        if purged < EXPIRED_SESSIONS && body["complete"] == json!(true) {
            self.failures.push(format!(
                "the purge deleted {purged} of {EXPIRED_SESSIONS} expired sessions"
            ));
        }
        if orphans != 0 {
            self.failures
                .push(format!("{orphans} drafts left behind by purged sessions"));
        }
        Ok(())
    }
}

/// Anonymous floods against an instance with the default limits, served with
/// the TCP peer as the client: one that forges a new forwarding header on
/// every request, one that sends none. Each takes a new session per request
/// and sends a batch of 10 events with it.
pub async fn floods(pg: &Postgres, redis_port: u16, result: &mut Lifecycle) -> anyhow::Result<()> {
    for forged in [true, false] {
        let prefix = format!("flood-{}-{forged}", crate::tokens::now());
        let app = crate::api(pg, redis_port, vec![("RATE_LIMIT_PREFIX", prefix)])?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        let (sessions_before, events_before) = counts(pg).await?;
        let sent = flood(&base, forged).await;
        server.abort();
        // Events are stored after their 202; give the writer a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (sessions_after, events_after) = counts(pg).await?;
        let (sessions, events) = (
            sessions_after - sessions_before,
            events_after - events_before,
        );
        // A sliding window lets at most its limit through in any minute; a
        // flood that straddles a minute boundary sees two windows.
        let (max_sessions, max_events) = (2 * SESSIONS_PER_IP, 2 * EVENTS_PER_IP);
        let kind = if forged {
            "forging X-Real-IP/X-Forwarded-For"
        } else {
            "from one address"
        };
        result.lines.push(format!(
            "anonymous flood    {kind}: {} requests in {FLOOD:?}, {sessions} sessions and {events} events stored (at most {max_sessions} and {max_events})",
            sent
        ));
        if sessions > max_sessions || events > max_events {
            result.failures.push(format!(
                "the flood {kind} stored {sessions} sessions and {events} events, over the limits"
            ));
        }
        if sessions == 0 {
            result
                .failures
                .push(format!("the flood {kind} created no session at all"));
        }
    }
    Ok(())
}

async fn counts(pg: &Postgres) -> anyhow::Result<(i64, i64)> {
    let (client, task) = pg.connect("onboarding").await?;
    let row = client
        .query_one(
            "select (select count(*) from onboarding.anonymous_sessions),
                    (select count(*) from onboarding.analytics_events)",
            &[],
        )
        .await?;
    task.abort();
    Ok((row.get(0), row.get(1)))
}

/// Requests until `FLOOD` passes: a new session, then ten events with it.
async fn flood(base: &str, forged: bool) -> usize {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");
    let events = json!({ "events": (0..10).map(|_| json!({ "type": "step_viewed", "step": "profile" })).collect::<Vec<_>>() });
    let deadline = Instant::now() + FLOOD;
    let mut sent = 0;
    let mut n: u32 = 0;
    while Instant::now() < deadline {
        n = n.wrapping_add(1);
        // Documentation addresses, only ever written into headers.
        let forged_ip = format!("203.0.113.{}", n % 254 + 1);
        let with_headers = |request: reqwest::RequestBuilder| {
            if forged {
                request
                    .header("x-real-ip", &forged_ip)
                    .header("x-forwarded-for", &forged_ip)
                    .header("x-vercel-forwarded-for", &forged_ip)
            } else {
                request
            }
        };
        sent += 1;
        let Ok(response) = with_headers(client.post(format!("{base}/api/onboarding/session")))
            .send()
            .await
        else {
            continue;
        };
        let Ok(body) = response.json::<Value>().await else {
            continue;
        };
        let Some(session) = body["session"].as_str() else {
            continue;
        };
        sent += 1;
        let _ = with_headers(client.post(format!("{base}/api/onboarding/events")))
            .header("x-onboarding-session", session)
            .json(&events)
            .send()
            .await;
    }
    sent
}
