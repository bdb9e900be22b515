//! Retention: the purge deletes what is past its retention, once, through
//! indexes, and only the login role may run it. Rows are written and counted
//! as the superuser; the purge itself runs as the application's role.

use std::time::Duration;

use onboarding::db::retention::{self, RetentionSettings};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::support::{TestDb, connect};

async fn count(admin: &Client, sql: &str) -> i64 {
    admin.query_one(sql, &[]).await.unwrap().get(0)
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
             from generate_series(1, {n}) i;"
        ))
        .await
        .unwrap();
}

async fn nothing_left(admin: &Client) {
    for table in [
        "anonymous_sessions",
        "progress",
        "step_answers",
        "idempotency_keys",
        "analytics_events",
        "ai_suggestions",
    ] {
        assert_eq!(
            count(admin, &format!("select count(*) from onboarding.{table}")).await,
            0,
            "{table}"
        );
    }
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
            rest.suggestions
        ),
        (25, 25, 25, 25)
    );
    nothing_left(&admin).await;
}

/// Each batch's selecting query, as the functions of the retention
/// migration run it, with the index it must be served by.
const BATCH_QUERIES: [(&str, &str, &str); 4] = [
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
             analyze onboarding.anonymous_sessions, onboarding.idempotency_keys,
                     onboarding.analytics_events, onboarding.ai_suggestions;",
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
                if function == "purge_old_events" {
                    "400"
                } else {
                    "90"
                },
            );
        let plan: Vec<String> = admin
            .query(&format!("explain {concrete}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let plan = plan.join("\n");
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
}

#[tokio::test]
async fn an_owner_under_row_level_security_refuses_instead_of_deleting_nothing() {
    let db = TestDb::migrated().await;
    let admin = connect(&db.admin_url()).await;
    past_retention(&admin, 1).await;
    // An owner with every privilege on the tables but under their forced
    // Row Level Security, as a migration role without BYPASSRLS would be.
    // Roles are cluster-wide and tests run in parallel: created once, racing safely.
    admin
        .batch_execute(
            "do $$ begin
               create role onboarding_retention_probe nologin nosuperuser nobypassrls;
             exception when duplicate_object or unique_violation then null;
             end $$;
             grant create, usage on schema onboarding to onboarding_retention_probe;
             grant select, update, delete on onboarding.anonymous_sessions, onboarding.progress,
               onboarding.step_answers to onboarding_retention_probe;
             grant execute on function onboarding.retention_guard(integer) to onboarding_retention_probe;
             alter function onboarding.purge_expired_sessions(integer) owner to onboarding_retention_probe;",
        )
        .await
        .unwrap();
    let error = connect(&db.app_url())
        .await
        .query("select onboarding.purge_expired_sessions(10)", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    assert!(
        error
            .as_db_error()
            .unwrap()
            .message()
            .contains("subject to row level security"),
        "{error:?}"
    );
    assert_eq!(
        count(&admin, "select count(*) from onboarding.anonymous_sessions").await,
        1
    );
}
