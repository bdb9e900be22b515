//! Retention: `GET /api/cron/purge` deletes exactly what is past its
//! retention, once, through indexes, and only for the cron secret's holder.
//! Rows are written and counted as the superuser; the purge itself runs as
//! the application's role, through the route.

use std::time::Duration;

use onboarding::db::retention::{self, RetentionSettings};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::support::{TestApp, TestDb, connect, spawn_app_with};

const CRON_SECRET: &str = "test-cron-secret-0123456789";
const PURGE: &str = "/api/cron/purge";

async fn app_with_secret() -> TestApp {
    spawn_app_with(
        TestDb::migrated().await,
        &[("CRON_SECRET", CRON_SECRET.into())],
    )
    .await
}

/// The purge, as Vercel's scheduler calls it.
async fn purge(app: &TestApp) -> Value {
    let response = app
        .http
        .get(format!("{}{PURGE}", app.address))
        .bearer_auth(CRON_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn session_hash(label: &str) -> String {
    Sha256::digest(label.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The first column of every row of `sql`, as text.
async fn texts(admin: &Client, sql: &str) -> Vec<String> {
    admin
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn count(admin: &Client, sql: &str) -> i64 {
    admin.query_one(sql, &[]).await.unwrap().get(0)
}

/// A session expiring `expires_in` from now (an interval, negative when
/// expired) with drafts of two steps.
async fn session_with_drafts(admin: &Client, label: &str, expires_in: &str) -> String {
    let hash = session_hash(label);
    admin
        .execute(
            "with session as (
               insert into onboarding.anonymous_sessions (id_hash, expires_at, created_at, last_seen_at)
               values ($1, now() + $2::text::interval, now() - interval '40 days', now() - interval '31 days')
               returning id_hash
             ), drafts as (
               insert into onboarding.progress (session_id, flow_id, flow_version)
               select id_hash, 'default', 1 from session
               returning id
             )
             insert into onboarding.step_answers (progress_id, step, answers, flow_version)
             select drafts.id, step, '{\"a\": 1}', 1 from drafts, unnest(array['profile', 'goals']) step",
            &[&hash, &expires_in],
        )
        .await
        .unwrap();
    hash
}

/// An idempotency record stored `age` ago (an interval), replayable for 24 hours after.
async fn idempotency_key(admin: &Client, key: &str, age: &str) {
    admin
        .execute(
            "insert into onboarding.idempotency_keys
               (subject, key, request_method, request_path, request_fingerprint,
                response_status, response_body, created_at, expires_at)
             values ('user:retention', $1, 'PUT', '/api/onboarding/steps/profile', 'f', 200, '\\x7b7d',
                     now() - $2::text::interval, now() - $2::text::interval + interval '24 hours')",
            &[&key, &age],
        )
        .await
        .unwrap();
}

/// An analytics event that happened `age` ago.
async fn event(admin: &Client, age: &str) {
    admin
        .execute(
            "insert into onboarding.analytics_events (user_id, flow_id, flow_version, event_type, occurred_at)
             values ('user_retention', 'default', 1, 'step_viewed', now() - $1::text::interval)",
            &[&age],
        )
        .await
        .unwrap();
}

/// An AI suggestion made `age` ago.
async fn suggestion(admin: &Client, age: &str) {
    admin
        .execute(
            "insert into onboarding.ai_suggestions
               (user_id, flow_id, step, field, prompt_key, prompt_version, provider, model,
                value, status, latency_ms, created_at)
             values ('user_retention', 'default', 'goals', 'primaryGoal', 'goals.primaryGoal', 1,
                     'openai', 'test-model', '\"v\"', 'pending', 1, now() - $1::text::interval)",
            &[&age],
        )
        .await
        .unwrap();
}

/// A progress row of `user` (an outbox event needs one).
async fn user_progress(admin: &Client, user: &str) {
    admin
        .execute(
            "insert into onboarding.progress (user_id, flow_id, flow_version) values ($1, 'default', 1)",
            &[&user],
        )
        .await
        .unwrap();
}

/// An outbox event of `user` (who has a progress row) in `state`: settled
/// `age` ago, or, pending, created then.
async fn outbox_event(admin: &Client, user: &str, state: &str, age: &str) {
    admin
        .execute(
            "insert into onboarding.outbox
               (event_id, user_id, progress_id, event_type, payload, state, created_at, settled_at)
             select gen_random_uuid(), p.user_id, p.id, 'onboarding.step_completed', '{}', $2::text,
                    now() - $3::text::interval - interval '1 minute',
                    case when $2::text = 'pending' then null else now() - $3::text::interval end
             from onboarding.progress p
             where p.user_id = $1",
            &[&user, &state, &age],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_purge_deletes_exactly_what_is_past_its_retention_and_nothing_live() {
    let app = app_with_secret().await;
    let admin = connect(&app.db.admin_url()).await;

    let mut expired = Vec::new();
    for (label, expires_in) in [
        ("gone-1", "-1 second"),
        ("gone-2", "-3 days"),
        ("gone-3", "-400 days"),
    ] {
        expired.push(session_with_drafts(&admin, label, expires_in).await);
    }
    let mut live = Vec::new();
    for (label, expires_in) in [("live-1", "1 minute"), ("live-2", "29 days")] {
        live.push(session_with_drafts(&admin, label, expires_in).await);
    }
    // Drafts an expired session handed to a user at sign-in are the user's.
    admin
        .execute(
            "insert into onboarding.progress (user_id, flow_id, flow_version) values ('user_merged', 'default', 1)",
            &[],
        )
        .await
        .unwrap();
    for (key, age) in [
        ("old-1", "25 hours"),
        ("old-2", "3 days"),
        ("old-3", "24 hours 1 second"),
        ("old-4", "400 days"),
    ] {
        idempotency_key(&admin, key, age).await;
    }
    for (key, age) in [
        ("new-1", "0 seconds"),
        ("new-2", "23 hours"),
        ("new-3", "23 hours 59 minutes"),
    ] {
        idempotency_key(&admin, key, age).await;
    }
    for age in [
        "401 days",
        "400 days 1 hour",
        "500 days",
        "3 years",
        "1000 days",
    ] {
        event(&admin, age).await;
    }
    for age in ["0 seconds", "7 days", "399 days", "399 days 23 hours"] {
        event(&admin, age).await;
    }
    for age in ["91 days", "90 days 1 hour"] {
        suggestion(&admin, age).await;
    }
    for age in ["0 seconds", "30 days", "89 days 23 hours"] {
        suggestion(&admin, age).await;
    }
    // Settled (delivered or dead) more than 30 days ago go; pending ones
    // stay however old, since they have still to reach their receivers.
    for (state, age) in [
        ("delivered", "31 days"),
        ("dead", "45 days"),
        ("delivered", "30 days 1 hour"),
    ] {
        outbox_event(&admin, "user_merged", state, age).await;
    }
    for (state, age) in [
        ("delivered", "29 days"),
        ("dead", "1 day"),
        ("pending", "400 days"),
    ] {
        outbox_event(&admin, "user_merged", state, age).await;
    }

    let first = purge(&app).await;
    assert_eq!(
        first,
        json!({ "sessions": 3, "idempotencyKeys": 4, "events": 5, "suggestions": 2, "outboxEvents": 3, "complete": true })
    );

    let remaining_sessions = texts(
        &admin,
        "select id_hash from onboarding.anonymous_sessions order by expires_at",
    )
    .await;
    assert_eq!(remaining_sessions, live);
    let draft_owners: Vec<Option<String>> = admin
        .query(
            "select coalesce(session_id, user_id) from onboarding.progress order by session_id nulls last",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut expected_owners: Vec<Option<String>> = live.iter().cloned().map(Some).collect();
    expected_owners.sort();
    expected_owners.push(Some("user_merged".into()));
    assert_eq!(draft_owners, expected_owners);
    assert_eq!(
        count(&admin, "select count(*) from onboarding.step_answers").await,
        4,
        "the live sessions' answers stay, the expired ones' went with their drafts"
    );
    let keys = texts(
        &admin,
        "select key from onboarding.idempotency_keys order by key",
    )
    .await;
    assert_eq!(keys, ["new-1", "new-2", "new-3"]);
    assert_eq!(
        count(
            &admin,
            "select count(*) from onboarding.analytics_events where occurred_at >= now() - interval '400 days'"
        )
        .await,
        4
    );
    assert_eq!(
        count(&admin, "select count(*) from onboarding.analytics_events").await,
        4
    );
    assert_eq!(
        count(
            &admin,
            "select count(*) from onboarding.ai_suggestions where created_at >= now() - interval '90 days'"
        )
        .await,
        3
    );
    assert_eq!(
        count(&admin, "select count(*) from onboarding.ai_suggestions").await,
        3
    );
    let outbox = texts(
        &admin,
        "select state || ' ' || coalesce(date_part('day', now() - settled_at)::text, '-')
         from onboarding.outbox order by id",
    )
    .await;
    assert_eq!(outbox, ["delivered 29", "dead 1", "pending -"]);

    let second = purge(&app).await;
    assert_eq!(
        second,
        json!({ "sessions": 0, "idempotencyKeys": 0, "events": 0, "suggestions": 0, "outboxEvents": 0, "complete": true })
    );
}

#[tokio::test]
async fn retention_follows_its_settings() {
    let app = spawn_app_with(
        TestDb::migrated().await,
        &[
            ("CRON_SECRET", CRON_SECRET.into()),
            ("ANALYTICS_RETENTION_DAYS", "30".into()),
            ("AI_SUGGESTION_RETENTION_DAYS", "7".into()),
            ("OUTBOX_RETENTION_DAYS", "3".into()),
        ],
    )
    .await;
    let admin = connect(&app.db.admin_url()).await;
    for age in ["31 days", "29 days"] {
        event(&admin, age).await;
    }
    for age in ["8 days", "6 days"] {
        suggestion(&admin, age).await;
    }
    user_progress(&admin, "user_outbox").await;
    for age in ["4 days", "2 days"] {
        outbox_event(&admin, "user_outbox", "delivered", age).await;
    }
    let purged = purge(&app).await;
    assert_eq!(
        (
            purged["events"].as_i64(),
            purged["suggestions"].as_i64(),
            purged["outboxEvents"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(
        count(&admin, "select count(*) from onboarding.outbox").await,
        1
    );
    assert_eq!(
        count(&admin, "select count(*) from onboarding.analytics_events").await,
        1
    );
    assert_eq!(
        count(&admin, "select count(*) from onboarding.ai_suggestions").await,
        1
    );
}

/// `n` rows of each kind past their retention, sessions with drafts.
async fn past_retention(admin: &Client, n: i32) {
    admin
        .batch_execute(&format!(
            "insert into onboarding.anonymous_sessions (id_hash, expires_at)
             select encode(sha256(('bulk-' || i)::bytea), 'hex'), now() - make_interval(secs => i)
             from generate_series(1, {n}) i;
             insert into onboarding.progress (session_id, flow_id, flow_version)
             select id_hash, 'default', 1 from onboarding.anonymous_sessions;
             insert into onboarding.step_answers (progress_id, step, answers, flow_version)
             select id, 'profile', '{{}}', 1 from onboarding.progress;
             insert into onboarding.idempotency_keys
               (subject, key, request_method, request_path, request_fingerprint, response_status,
                response_body, created_at, expires_at)
             select 'user:bulk', 'k' || i, 'PUT', '/p', 'f', 200, '\\x', now() - interval '2 days',
                    now() - interval '1 day' - make_interval(secs => i)
             from generate_series(1, {n}) i;
             insert into onboarding.analytics_events (user_id, flow_id, flow_version, event_type, occurred_at)
             select 'user_bulk', 'default', 1, 'step_viewed', now() - interval '401 days' - make_interval(secs => i)
             from generate_series(1, {n}) i;
             insert into onboarding.ai_suggestions
               (user_id, flow_id, step, field, prompt_key, prompt_version, provider, model, value,
                status, latency_ms, created_at)
             select 'user_bulk', 'default', 'goals', 'primaryGoal', 'goals.primaryGoal', 1, 'openai',
                    'test-model', '\"v\"', 'pending', 1, now() - interval '91 days' - make_interval(secs => i)
             from generate_series(1, {n}) i;
             insert into onboarding.progress (user_id, flow_id, flow_version) values ('user_bulk', 'default', 1);
             insert into onboarding.outbox
               (event_id, user_id, progress_id, event_type, payload, state, created_at, settled_at)
             select gen_random_uuid(), 'user_bulk', p.id, 'onboarding.step_completed', '{{}}', 'delivered',
                    now() - interval '32 days', now() - interval '31 days' - make_interval(secs => i)
             from onboarding.progress p, generate_series(1, {n}) i
             where p.user_id = 'user_bulk';"
        ))
        .await
        .unwrap();
}

async fn nothing_left(admin: &Client) {
    for table in [
        "anonymous_sessions",
        "step_answers",
        "idempotency_keys",
        "analytics_events",
        "ai_suggestions",
        "outbox",
    ] {
        assert_eq!(
            count(admin, &format!("select count(*) from onboarding.{table}")).await,
            0,
            "{table}"
        );
    }
    // The sessions' drafts went; the user's progress (whose events went) stays.
    assert_eq!(
        count(
            admin,
            "select count(*) from onboarding.progress where user_id is null"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn two_purges_at_once_delete_each_row_once() {
    // More than two batches of each kind, so the runs overlap batch by batch.
    const ROWS: i32 = 2_500;
    let app = app_with_secret().await;
    let admin = connect(&app.db.admin_url()).await;
    past_retention(&admin, ROWS).await;

    let (one, two) = tokio::join!(purge(&app), purge(&app));
    for kind in [
        "sessions",
        "idempotencyKeys",
        "events",
        "suggestions",
        "outboxEvents",
    ] {
        assert_eq!(
            one[kind].as_i64().unwrap() + two[kind].as_i64().unwrap(),
            i64::from(ROWS),
            "{kind}: {one} {two}"
        );
    }
    assert_eq!(
        (&one["complete"], &two["complete"]),
        (&json!(true), &json!(true))
    );
    nothing_left(&admin).await;
}

#[tokio::test]
async fn many_small_batches_at_once_delete_each_row_once() {
    const ROWS: i32 = 300;
    let db = TestDb::migrated().await;
    let admin = connect(&db.admin_url()).await;
    past_retention(&admin, ROWS).await;
    let database = db.database();
    let settings = RetentionSettings::default();
    let run = || retention::purge(&database, &settings, 7, Duration::from_secs(60));
    let (a, b, c) = tokio::join!(run(), run(), run());
    let runs = [a.unwrap(), b.unwrap(), c.unwrap()];
    let total = |of: fn(&retention::Purged) -> i64| runs.iter().map(of).sum::<i64>();
    assert_eq!(total(|r| r.sessions), i64::from(ROWS));
    assert_eq!(total(|r| r.idempotency_keys), i64::from(ROWS));
    assert_eq!(total(|r| r.events), i64::from(ROWS));
    assert_eq!(total(|r| r.suggestions), i64::from(ROWS));
    assert_eq!(total(|r| r.outbox_events), i64::from(ROWS));
    assert!(runs.iter().all(|run| run.complete));
    nothing_left(&admin).await;
}

#[tokio::test]
async fn a_purge_out_of_time_says_so_and_the_next_one_continues() {
    let db = TestDb::migrated().await;
    let admin = connect(&db.admin_url()).await;
    past_retention(&admin, 25).await;
    let database = db.database();
    let settings = RetentionSettings::default();
    let cut_short = retention::purge(&database, &settings, 10, Duration::ZERO)
        .await
        .unwrap();
    assert!(!cut_short.complete);
    assert_eq!(cut_short.sessions, 0);
    let rest = retention::purge(&database, &settings, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(rest.complete);
    assert_eq!(
        (
            rest.sessions,
            rest.idempotency_keys,
            rest.events,
            rest.suggestions,
            rest.outbox_events
        ),
        (25, 25, 25, 25, 25)
    );
    nothing_left(&admin).await;
}

#[tokio::test]
async fn the_purge_runs_only_for_the_cron_secret() {
    let app = app_with_secret().await;
    let admin = connect(&app.db.admin_url()).await;
    session_with_drafts(&admin, "expired", "-1 day").await;
    let url = format!("{}{PURGE}", app.address);
    let attempts = [
        app.http.get(&url),
        app.http.get(&url).bearer_auth("test-cron-secret-012345678"),
        app.http.get(&url).bearer_auth(format!("{CRON_SECRET}x")),
        app.http
            .get(&url)
            .header("authorization", format!("Basic {CRON_SECRET}")),
        app.http
            .get(&url)
            .bearer_auth(crate::support::token("user_1", None)),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert_eq!(
        count(&admin, "select count(*) from onboarding.anonymous_sessions").await,
        1,
        "nothing ran"
    );
}

#[tokio::test]
async fn without_a_cron_secret_the_purge_is_not_configured_and_never_runs() {
    let app = spawn_app_with(TestDb::migrated().await, &[]).await;
    let admin = connect(&app.db.admin_url()).await;
    session_with_drafts(&admin, "expired", "-1 day").await;
    for secret in ["", "anything-at-all-0123"] {
        let response = app
            .http
            .get(format!("{}{PURGE}", app.address))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("the purge is not configured"),
            "{problem}"
        );
    }
    assert_eq!(
        count(&admin, "select count(*) from onboarding.anonymous_sessions").await,
        1
    );
}

/// Each batch's selecting query, as the functions of the retention
/// migration run it, with the index it must be served by.
const BATCH_QUERIES: [(&str, &str, &str); 5] = [
    (
        "purge_expired_sessions",
        "anonymous_sessions_expires",
        "select s.id_hash
    from onboarding.anonymous_sessions s
    where s.expires_at < now()
    order by s.expires_at
    limit batch_size
    for update skip locked",
    ),
    (
        "purge_expired_idempotency_keys",
        "idempotency_keys_expires",
        "select k.ctid
    from onboarding.idempotency_keys k
    where k.expires_at < now()
    order by k.expires_at
    limit batch_size
    for update skip locked",
    ),
    (
        "purge_old_events",
        "analytics_events_occurred",
        "select e.id
    from onboarding.analytics_events e
    where e.occurred_at < now() - make_interval(days => retention_days)
    order by e.occurred_at
    limit batch_size
    for update skip locked",
    ),
    (
        "purge_old_suggestions",
        "ai_suggestions_created",
        "select a.id
    from onboarding.ai_suggestions a
    where a.created_at < now() - make_interval(days => retention_days)
    order by a.created_at
    limit batch_size
    for update skip locked",
    ),
    (
        "purge_settled_outbox",
        "outbox_settled",
        "select o.id
    from onboarding.outbox o
    where o.state <> 'pending'
      and o.settled_at < now() - make_interval(days => retention_days)
    order by o.settled_at
    limit batch_size
    for update skip locked",
    ),
];

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn each_batch_finds_its_rows_through_an_index() {
    let db = TestDb::migrated().await;
    let admin = connect(&db.admin_url()).await;
    // A realistic spread: 50,000 rows a table, a tenth to a quarter of them
    // past retention, statistics up to date. The planner is left free
    // (no `enable_seqscan = off`): a missing index shows as a Seq Scan.
    admin
        .batch_execute(
            "insert into onboarding.anonymous_sessions (id_hash, expires_at)
             select encode(sha256(('plan-' || i)::bytea), 'hex'), now() + make_interval(days => (i % 50) - 5)
             from generate_series(1, 50000) i;
             insert into onboarding.idempotency_keys
               (subject, key, request_method, request_path, request_fingerprint, response_status,
                response_body, created_at, expires_at)
             select 'user:u' || (i % 100), 'k' || i, 'PUT', '/p', 'f', 200, '\\x',
                    now() - make_interval(hours => i % 200), now() - make_interval(hours => i % 200) + interval '24 hours'
             from generate_series(1, 50000) i;
             insert into onboarding.analytics_events (user_id, flow_id, flow_version, event_type, occurred_at)
             select 'u' || (i % 100), 'default', 1, 'step_viewed', now() - make_interval(days => i % 500)
             from generate_series(1, 50000) i;
             insert into onboarding.ai_suggestions
               (user_id, flow_id, step, field, prompt_key, prompt_version, provider, model, value,
                status, latency_ms, created_at)
             select 'u' || (i % 100), 'default', 'goals', 'primaryGoal', 'goals.primaryGoal', 1, 'openai',
                    'm', '\"v\"', 'pending', 1, now() - make_interval(days => i % 120)
             from generate_series(1, 50000) i;
             insert into onboarding.progress (user_id, flow_id, flow_version) values ('u-plan', 'default', 1);
             insert into onboarding.outbox
               (event_id, user_id, progress_id, event_type, payload, state, created_at, settled_at)
             select gen_random_uuid(), 'u-plan', p.id, 'onboarding.step_completed', '{}',
                    case when i % 20 = 0 then 'pending' when i % 7 = 0 then 'dead' else 'delivered' end,
                    now() - make_interval(days => i % 300) - interval '1 minute',
                    case when i % 20 = 0 then null else now() - make_interval(days => i % 300) end
             from onboarding.progress p, generate_series(1, 50000) i
             where p.user_id = 'u-plan';
             analyze onboarding.anonymous_sessions, onboarding.idempotency_keys,
                     onboarding.analytics_events, onboarding.ai_suggestions, onboarding.outbox;",
        )
        .await
        .unwrap();
    for (function, index, query) in BATCH_QUERIES {
        // The query is the function's own, not a copy that could drift.
        let source: String = admin
            .query_one(
                "select prosrc from pg_proc where proname = $1 and pronamespace = 'onboarding'::regnamespace",
                &[&function],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            words(&source).contains(&words(query)),
            "{function} no longer runs the query this test plans"
        );
        // Planned with the values the purge passes, as each call's custom plan is.
        let concrete = query
            .replace("batch_size", &retention::BATCH_SIZE.to_string())
            .replace(
                "retention_days",
                match function {
                    "purge_old_events" => "400",
                    "purge_settled_outbox" => "30",
                    _ => "90",
                },
            );
        let plan = texts(&admin, &format!("explain {concrete}"))
            .await
            .join("\n");
        assert!(
            plan.contains(index) && !plan.contains("Seq Scan"),
            "{function} does not select through {index}:\n{plan}"
        );
    }
}

#[tokio::test]
async fn only_the_login_role_may_run_the_purge_functions() {
    let db = TestDb::migrated().await;
    let admin = connect(&db.admin_url()).await;
    let functions = [
        "onboarding.purge_expired_sessions(integer)",
        "onboarding.purge_expired_idempotency_keys(integer)",
        "onboarding.purge_old_events(integer, integer)",
        "onboarding.purge_old_suggestions(integer, integer)",
        "onboarding.purge_settled_outbox(integer, integer)",
    ];
    for function in functions {
        let row = admin
            .query_one(
                "select p.prosecdef,
                        coalesce('search_path=pg_catalog, pg_temp' = any(p.proconfig), false),
                        has_function_privilege('onboarding_app', p.oid, 'execute'),
                        has_function_privilege('anonymous', p.oid, 'execute'),
                        has_function_privilege('authenticated', p.oid, 'execute'),
                        p.proacl is null
                          or exists (select 1 from aclexplode(p.proacl) a where a.grantee = 0)
                 from pg_proc p
                 where p.oid = $1::text::regprocedure",
                &[&function],
            )
            .await
            .unwrap();
        let flags: (bool, bool, bool, bool, bool, bool) = (
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
        );
        assert_eq!(
            flags,
            (true, true, true, false, false, false),
            "{function}: security definer, search_path, app, anonymous, authenticated, public"
        );
    }
    // A request's transaction switches role first: the functions are out of its reach.
    let app = connect(&db.app_url()).await;
    for role in ["anonymous", "authenticated"] {
        app.batch_execute(&format!("begin; set local role {role}"))
            .await
            .unwrap();
        let error = app
            .query("select onboarding.purge_expired_sessions(10)", &[])
            .await
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{role}"
        );
        app.batch_execute("rollback").await.unwrap();
    }
    let error = app
        .query("select onboarding.purge_expired_sessions(0)", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));
    let error = app
        .query("select onboarding.purge_old_events(0, 10)", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));
    let error = app
        .query("select onboarding.purge_settled_outbox(0, 10)", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));
}

#[tokio::test]
async fn the_purgers_own_policies_reach_only_what_is_past_its_retention() {
    let app = app_with_secret().await;
    let admin = connect(&app.db.admin_url()).await;
    session_with_drafts(&admin, "live", "1 day").await;
    session_with_drafts(&admin, "expired", "-1 day").await;
    idempotency_key(&admin, "fresh", "1 hour").await;
    idempotency_key(&admin, "stale", "25 hours").await;
    event(&admin, "1 hour").await;
    event(&admin, "2 days").await;
    suggestion(&admin, "1 hour").await;
    suggestion(&admin, "2 days").await;
    user_progress(&admin, "user_outbox").await;
    outbox_event(&admin, "user_outbox", "delivered", "1 hour").await;
    outbox_event(&admin, "user_outbox", "dead", "2 days").await;
    outbox_event(&admin, "user_outbox", "pending", "30 days").await;
    // As the functions' owner, with no WHERE at all: its policies decide.
    admin
        .batch_execute(
            "begin;
             set local role onboarding_purger;
             delete from onboarding.progress;
             delete from onboarding.anonymous_sessions;
             delete from onboarding.idempotency_keys;
             delete from onboarding.analytics_events;
             delete from onboarding.ai_suggestions;
             delete from onboarding.outbox;
             commit;",
        )
        .await
        .unwrap();
    for (table, left) in [
        ("anonymous_sessions", 1),
        // The live session's draft and the user's progress.
        ("progress", 2),
        ("step_answers", 2),
        ("idempotency_keys", 1),
        ("analytics_events", 1),
        ("ai_suggestions", 1),
        ("outbox", 2),
    ] {
        let sql = format!("select count(*) from onboarding.{table}");
        assert_eq!(count(&admin, &sql).await, left, "{table}");
    }
    let owner: String = admin
        .query_one(
            "select r.rolname::text from pg_proc p join pg_roles r on r.oid = p.proowner
             where p.proname = 'purge_expired_sessions'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "onboarding_purger");
}
