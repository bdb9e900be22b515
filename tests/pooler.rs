//! The application behind PgBouncer in transaction mode (Debian's package,
//! started here in front of the local server): announced in the URL
//! (`pgbouncer=true`), and not, when the pool must learn it from the server's
//! answers; a pooler that stops answering (`PAUSE`) for longer than a
//! request may take; and a PgBouncer that keeps prepared statements
//! (1.24.1, built by `scripts/pgbouncer-prepared`), with
//! `DATABASE_STATEMENT_MODE=prepared`.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use onboarding::db::{Database, RlsContext, Statement, StatementMode};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::api::{Api, Auth, valid_answer};
use crate::support::cluster::{PgBouncer, PoolMode};
use crate::support::{TestDb, spawn_app_with};
use crate::wizard::whole_onboarding;

fn bouncer(server_connections: u16) -> (PgBouncer, std::path::PathBuf) {
    bouncer_in(PoolMode::Transaction, server_connections)
}

fn bouncer_in(mode: PoolMode, server_connections: u16) -> (PgBouncer, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "onboarding-pgbouncer-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let bouncer = PgBouncer::start(&dir, 5432, mode, server_connections).expect(
        "PgBouncer starts (apt-get install pgbouncer; scripts/pgbouncer-prepared; .ci/run does both)",
    );
    (bouncer, dir)
}

fn through(bouncer: &PgBouncer, db: &TestDb, parameters: &str) -> String {
    format!(
        "postgres://onboarding_app@127.0.0.1:{}/{}?sslmode=disable{parameters}",
        bouncer.port, db.name
    )
}

async fn health(api: &Api) -> Value {
    let response = api
        .request(Method::GET, "/api/health", &Auth::none())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Journeys at once, so that transactions of different pooled connections
/// share the pooler's server connections.
async fn journeys(api: &Api, count: usize) {
    let run = uuid::Uuid::new_v4().simple().to_string();
    join_all((0..count).map(|index| {
        let user = format!("pooled-{run}-{index}");
        let slug = format!("pooled-{}-{index}", &run[..8]);
        async move { whole_onboarding(api, &user, &slug).await }
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unannounced_pooler_is_found_by_its_answers_and_no_request_fails() {
    let (bouncer, dir) = bouncer(2);
    let db = TestDb::migrated().await;
    let url = through(&bouncer, &db, "");

    // The pool prepares its statements on the pooler's one server
    // connection; another client then holds that one in a transaction, so
    // the pool's next transaction is given a second server connection, where
    // its named statements do not exist.
    let settings = db.settings_with(&[("DATABASE_URL", url.clone())]).database;
    let database = Database::new(&settings).unwrap();
    assert_eq!(database.statement_mode(), StatementMode::Prepared);
    const ONE: Statement = Statement::new("select 1", &[]);
    let anyone = RlsContext::anonymous(None);
    database.one_trip(&anyone, &ONE, &[]).await.unwrap();
    assert!(!database.pooler_detected());
    let holder = crate::support::connect(&through(&bouncer, &db, "")).await;
    holder.batch_execute("begin; select 1").await.unwrap();
    database
        .one_trip(&anyone, &ONE, &[])
        .await
        .expect("answered, retried with unnamed statements");
    holder.batch_execute("commit").await.unwrap();
    assert!(database.pooler_detected());
    assert_eq!(database.statement_mode(), StatementMode::Unnamed);

    journeys_then_unnamed(db, url, true).await;
    drop(bouncer);
    let _ = std::fs::remove_dir_all(dir);
}

/// Whole journeys through the app at `url`; health then reports unnamed
/// statements, found by the pooler's answers or not.
async fn journeys_then_unnamed(db: TestDb, url: String, detected: bool) {
    let app = spawn_app_with(db, &[("DATABASE_URL", url)]).await;
    let api = Api::at(&app.address);
    journeys(&api, 4).await;
    let report = health(&api).await;
    let database = &report["checks"]["database"];
    assert_eq!(database["statementMode"], "unnamed", "{report}");
    assert_eq!(database["poolerDetected"], detected, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_pooler_gets_unnamed_statements_from_the_start() {
    let (bouncer, dir) = bouncer(2);
    let db = TestDb::migrated().await;
    let url = through(&bouncer, &db, "&pgbouncer=true");
    journeys_then_unnamed(db, url, false).await;
    drop(bouncer);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_pooler_turns_requests_into_503s_by_the_deadline_and_loses_nothing() {
    let (bouncer, dir) = bouncer(2);
    let db = TestDb::migrated().await;
    let url = through(&bouncer, &db, "&pgbouncer=true");
    let deadline = Duration::from_millis(1500);
    let app = spawn_app_with(
        db,
        &[
            ("DATABASE_URL", url),
            (
                "DATABASE_QUERY_TIMEOUT_MS",
                deadline.as_millis().to_string(),
            ),
        ],
    )
    .await;
    let api = Api::at(&app.address);
    let session = api.start_session().await;
    let visitor = Auth::session(&session);
    let acknowledged = api
        .put_step("profile", &visitor, valid_answer("profile"), false, None)
        .await;
    assert_eq!(acknowledged.status(), 200);

    // Paused until every request below has ended: to them, a pooler that never answers.
    bouncer.admin("PAUSE").await.unwrap();
    let started = Instant::now();
    let requests = (0..4).map(|index| {
        let api = &api;
        let visitor = &visitor;
        async move {
            let response = if index % 2 == 0 {
                api.request(Method::GET, "/api/onboarding/steps/profile", visitor)
                    .send()
                    .await
                    .unwrap()
            } else {
                api.put_step("goals", visitor, valid_answer("goals"), false, None)
                    .await
            };
            (response.status().as_u16(), started.elapsed())
        }
    });
    let outcomes = join_all(requests).await;
    bouncer.admin("RESUME").await.unwrap();
    for (status, took) in &outcomes {
        assert_eq!(*status, 503, "{outcomes:?}");
        // The deadline, not the pause, ended them (the pause had no end).
        assert!(*took < deadline * 4, "{outcomes:?}");
    }

    // The write acknowledged before the pause is there; none of the refused ones is.
    let response = api
        .request(Method::GET, "/api/onboarding/steps/profile", &visitor)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let step: Value = response.json().await.unwrap();
    assert_eq!(step["version"], 1, "{step}");
    assert_eq!(step["answers"], valid_answer("profile"));
    let response = api
        .request(Method::GET, "/api/onboarding/steps/goals", &visitor)
        .send()
        .await
        .unwrap();
    let goals: Value = response.json().await.unwrap();
    assert_eq!(goals["version"], 0, "a refused save left nothing: {goals}");
    let response = api
        .put_step("goals", &visitor, json!(valid_answer("goals")), false, None)
        .await;
    assert_eq!(response.status(), 200, "the pool recovered after the pause");
    drop(bouncer);
    let _ = std::fs::remove_dir_all(dir);
}

/// PgBouncer's counters for `database` (`SHOW STATS`, 1.21 and later).
async fn pooler_stats(bouncer: &PgBouncer, database: &str) -> (u64, u64, u64) {
    let rows = bouncer.admin_rows("SHOW STATS").await.unwrap();
    let row = rows
        .iter()
        .find(|row| row["database"] == database)
        .unwrap_or_else(|| panic!("no statistics for {database}: {rows:?}"));
    let count = |column: &str| -> u64 { row[column].parse().unwrap() };
    (
        count("total_client_parse_count"),
        count("total_server_parse_count"),
        count("total_bind_count"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooler_that_keeps_prepared_statements_gets_them_and_parses_each_once_per_server_connection()
 {
    let (bouncer, dir) = bouncer_in(PoolMode::TransactionKeepingPrepared, 2);
    let db = TestDb::migrated().await;
    let url = through(&bouncer, &db, "");

    // The situation that gives an unannounced 1.18 away (a second server
    // connection, where the pool's named statements do not exist) is no
    // error here: PgBouncer prepares them there itself.
    let settings = db.settings_with(&[("DATABASE_URL", url.clone())]).database;
    let database = Database::new(&settings).unwrap();
    const ONE: Statement = Statement::new("select 1", &[]);
    let anyone = RlsContext::anonymous(None);
    database.one_trip(&anyone, &ONE, &[]).await.unwrap();
    let holder = crate::support::connect(&through(&bouncer, &db, "")).await;
    holder.batch_execute("begin; select 1").await.unwrap();
    database.one_trip(&anyone, &ONE, &[]).await.unwrap();
    holder.batch_execute("commit").await.unwrap();
    assert!(!database.pooler_detected());
    assert_eq!(database.statement_mode(), StatementMode::Prepared);
    drop(database);

    let app = spawn_app_with(
        db,
        &[
            ("DATABASE_URL", url),
            ("DATABASE_STATEMENT_MODE", "prepared".to_string()),
        ],
    )
    .await;
    let api = Api::at(&app.address);
    let before = pooler_stats(&bouncer, &app.db.name).await;
    journeys(&api, 4).await;
    let report = health(&api).await;
    let checks = &report["checks"]["database"];
    assert_eq!(checks["statementMode"], "prepared", "{report}");
    assert_eq!(checks["poolerDetected"], false, "{report}");

    // Named statements reached the server through the pooler, and each was
    // parsed (and its plan cached) there once per server connection, not
    // once per use: the plan cost an unnamed statement pays on every call.
    let after = pooler_stats(&bouncer, &app.db.name).await;
    let (client_parses, server_parses, binds) =
        (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    assert!(client_parses > 0 && binds > 0, "{after:?} after {before:?}");
    assert!(
        server_parses <= client_parses && server_parses * 4 <= binds,
        "server parses {server_parses}, client parses {client_parses}, binds {binds}"
    );
    drop(bouncer);
    let _ = std::fs::remove_dir_all(dir);
}
