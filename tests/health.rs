//! `GET /api/health`, the shared error shape, and what a database outage does.

use std::time::Duration;

use axum::response::IntoResponse;
use onboarding::ApiError;
use onboarding::db::{DbError, RlsContext, progress};

use crate::support::proxy::DelayProxy;
use crate::support::{TestApp, TestDb, free_port, spawn_app, spawn_app_with};

async fn health_of(app: &TestApp) -> reqwest::Response {
    app.http
        .get(format!("{}/api/health", app.address))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_reports_every_dependency_up() {
    let app = spawn_app().await;
    let response = health_of(&app).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers().contains_key("x-request-id"));
    assert!(
        response.headers()["server-timing"]
            .to_str()
            .unwrap()
            .starts_with("db;dur=")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    for dependency in ["database", "redis", "edgeConfig"] {
        assert_eq!(
            body["checks"][dependency]["status"], "up",
            "{dependency}: {body}"
        );
    }
    assert_eq!(body["checks"]["database"]["schema"], "current", "{body}");
    assert_eq!(
        body["checks"]["database"]["statementMode"], "prepared",
        "{body}"
    );
    assert_eq!(
        body["checks"]["database"]["poolerDetected"], false,
        "{body}"
    );
}

#[tokio::test]
async fn health_is_503_when_the_database_lacks_the_binarys_newest_migration() {
    let db = TestDb::migrated().await;
    let admin = crate::support::connect(&db.admin_url()).await;
    let newest: i64 = admin
        .query_one("select max(version) from refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    admin
        .execute(
            "delete from refinery_schema_history where version = $1",
            &[&newest],
        )
        .await
        .unwrap();
    let app = spawn_app_with(db, &[]).await;
    let response = health_of(&app).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    let database = &body["checks"]["database"];
    assert_eq!(database["schema"], "behind", "{body}");
    let error = database["error"].as_str().unwrap();
    assert!(
        error.contains(&newest.to_string()) && error.contains("run the migrations"),
        "{error}"
    );
}

#[tokio::test]
async fn health_is_503_with_retry_after_when_the_database_is_down() {
    let db = TestDb::migrated().await;
    let closed = free_port();
    let app = spawn_app_with(
        db,
        &[(
            "DATABASE_URL",
            format!("postgres://onboarding_app@127.0.0.1:{closed}/x?sslmode=disable"),
        )],
    )
    .await;
    let response = health_of(&app).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"]["status"], "down");
}

#[tokio::test]
async fn health_is_degraded_not_failed_when_redis_is_down() {
    let db = TestDb::migrated().await;
    let closed = free_port();
    let app = spawn_app_with(db, &[("REDIS_URL", format!("redis://127.0.0.1:{closed}"))]).await;
    let response = health_of(&app).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["redis"]["status"], "down");
    assert_eq!(body["checks"]["database"]["status"], "up");
}

#[tokio::test]
async fn health_is_degraded_with_the_reason_when_edge_config_serves_the_embedded_default() {
    let db = TestDb::migrated().await;
    let missing = "/nonexistent/edge-config.json".to_string();
    let app = spawn_app_with(db, &[("EDGE_CONFIG_FILE", missing)]).await;
    let response = health_of(&app).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["edgeConfig"]["status"], "down", "{body}");
    let error = body["checks"]["edgeConfig"]["error"].as_str().unwrap();
    assert!(error.contains("embedded default"), "{error}");
    assert_eq!(body["checks"]["database"]["status"], "up");
}

#[tokio::test]
async fn health_reports_an_unreachable_remote_edge_config_as_down_not_failed() {
    let db = TestDb::migrated().await;
    let closed = free_port();
    let app = spawn_app_with(
        db,
        &[(
            "EDGE_CONFIG",
            format!("http://127.0.0.1:{closed}/ecfg_health?token=t"),
        )],
    )
    .await;
    let response = health_of(&app).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["edgeConfig"]["status"], "down", "{body}");
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_problem_shape_with_the_request_id() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/api/nope", app.address))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.headers()["x-request-id"], "trace-123");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(body["requestId"], "trace-123");

    let response = app
        .http
        .delete(format!("{}/api/health", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://onboarding.dev/problems/method-not-allowed"
    );
    assert!(body["requestId"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn a_malformed_request_id_is_replaced_not_echoed() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/api/health", app.address))
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    let echoed = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(echoed, "two words");
    assert_eq!(echoed.len(), 32);
}

#[tokio::test]
async fn a_database_outage_is_a_503_and_the_pool_recovers_by_itself() {
    let test_db = TestDb::migrated().await;
    let proxy = DelayProxy::start("127.0.0.1:5432", Duration::ZERO).await;
    let url = format!(
        "postgres://onboarding_app@127.0.0.1:{}/{}?sslmode=disable",
        proxy.port, test_db.name
    );
    let db = test_db.database_at(&test_db.settings().database, url);
    let caller = RlsContext::anonymous(Some(&"f".repeat(64)));
    progress::fetch_own_in_one_trip(&db, &caller, "default")
        .await
        .unwrap();

    proxy.cut();
    let error = progress::fetch_own_in_one_trip(&db, &caller, "default")
        .await
        .unwrap_err();
    assert!(matches!(error, DbError::Unavailable(_)), "{error:?}");
    let response = ApiError::from(error).into_response();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // While it is down, new connections fail the same way, without a panic.
    let error = progress::fetch_own_in_one_trip(&db, &caller, "default")
        .await
        .unwrap_err();
    assert!(matches!(error, DbError::Unavailable(_)), "{error:?}");

    proxy.restore();
    // The dead connections are dropped and new ones opened, with no restart.
    let mut recovered = false;
    for _ in 0..50 {
        if progress::fetch_own_in_one_trip(&db, &caller, "default")
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the pool did not recover after the database came back"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_its_idle_timeout_and_the_next_request_opens_one() {
    use onboarding::db::{Database, PoolLifecycle, Statement};
    const BACKEND: Statement = Statement::new("select pg_backend_pid()", &[]);
    let test_db = TestDb::migrated().await;
    let settings = test_db.settings().database.with_lifecycle(PoolLifecycle {
        idle_timeout: Duration::from_millis(200),
        max_lifetime: Duration::from_secs(60),
    });
    let db = Database::new(&settings).unwrap();
    let anyone = RlsContext::anonymous(None);
    let pid: i32 = db.one_trip(&anyone, &BACKEND, &[]).await.unwrap()[0].get(0);
    assert_eq!(db.open_connections(), 1);
    let admin = crate::support::connect(&test_db.admin_url()).await;
    let alive = async |pid: i32| -> bool {
        admin
            .query_one(
                "select count(*) from pg_stat_activity where pid = $1",
                &[&pid],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    };
    assert!(alive(pid).await);

    // Idle past the timeout (and the sweep interval): the next checkout closes it.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let next: i32 = db.one_trip(&anyone, &BACKEND, &[]).await.unwrap()[0].get(0);
    assert_ne!(next, pid, "the idle connection was reused");
    assert_eq!(db.open_connections(), 1);
    let mut closed = false;
    for _ in 0..50 {
        if !alive(pid).await {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the server still has the idle connection");
}

#[tokio::test]
async fn a_pool_at_rest_gives_its_idle_connections_back_without_a_request() {
    use onboarding::db::{Database, PoolLifecycle, Statement};
    const ONE: Statement = Statement::new("select 1", &[]);
    let test_db = TestDb::migrated().await;
    let settings = test_db.settings().database.with_lifecycle(PoolLifecycle {
        idle_timeout: Duration::from_millis(200),
        max_lifetime: Duration::from_secs(60),
    });
    let db = Database::new(&settings).unwrap();
    db.one_trip(&RlsContext::anonymous(None), &ONE, &[])
        .await
        .unwrap();
    assert_eq!(db.open_connections(), 1);
    let mut open = 1;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = db.open_connections();
        if open == 0 {
            break;
        }
    }
    assert_eq!(open, 0, "the idle connection was never closed");
}

#[tokio::test]
async fn a_refused_connection_keeps_the_servers_reason() {
    use onboarding::db::Database;
    let test_db = TestDb::migrated().await;
    let admin = crate::support::connect(&test_db.admin_url()).await;
    admin
        .batch_execute(&format!(
            "alter database {} connection limit 0",
            test_db.name
        ))
        .await
        .unwrap();
    let db = Database::new(&test_db.settings().database).unwrap();
    let error = db.ping().await.unwrap_err();
    let DbError::Unavailable(reason) = error else {
        panic!("expected unavailable, got {error:?}");
    };
    assert!(
        reason.contains("too many connections"),
        "the reason was lost: {reason}"
    );
    admin
        .batch_execute(&format!(
            "alter database {} connection limit -1",
            test_db.name
        ))
        .await
        .unwrap();
}

/// A statement that stalls ends at the query timeout as unavailable, and the
/// connection it was on is closed, not handed to the next request while the
/// server may still be busy with it; `backend` names the connection it runs on.
async fn stalled_at_the_deadline(
    stall: &onboarding::db::Statement,
    backend: &onboarding::db::Statement,
) {
    use onboarding::db::Database;
    let test_db = TestDb::migrated().await;
    let settings = test_db
        .settings()
        .database
        .with_query_timeout(Duration::from_millis(300));
    let db = Database::new(&settings).unwrap();
    let anyone = RlsContext::anonymous(None);
    let before: i32 = db.one_trip(&anyone, backend, &[]).await.unwrap()[0].get(0);
    // Without a deadline this answers after 2 s; with one it is unavailable.
    let stalled = db.one_trip(&anyone, stall, &[]).await;
    match stalled {
        Err(DbError::Unavailable(reason)) => {
            assert!(reason.contains("did not answer within"), "{reason}")
        }
        other => panic!("expected the deadline, got {other:?}"),
    }
    // The interrupted connection went; the next request gets a fresh one.
    let after: i32 = db.one_trip(&anyone, backend, &[]).await.unwrap()[0].get(0);
    assert_ne!(after, before, "the interrupted connection was used again");
    let admin = crate::support::connect(&test_db.admin_url()).await;
    let mut gone = false;
    for _ in 0..50 {
        if !crate::support::app_backends(&admin, &test_db.name)
            .await
            .contains(&before)
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the server still has the interrupted connection");
    assert_eq!(db.open_connections(), 1);
}

#[tokio::test]
async fn a_stalled_query_ends_at_the_query_timeout_and_its_connection_is_not_reused() {
    use onboarding::db::Statement;
    const STALL: Statement = Statement::new("select pg_sleep(2)", &[]);
    const BACKEND: Statement = Statement::new("select pg_backend_pid()", &[]);
    stalled_at_the_deadline(&STALL, &BACKEND).await;
}
