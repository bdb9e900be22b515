//! The claim that a typical authenticated read costs one network round trip,
//! checked by counting request/response turns at a delaying proxy (never by
//! timing).

use std::time::Duration;

use onboarding::db::progress;
use onboarding::db::{RlsContext, Statement, StatementMode};

use crate::support::TestDb;
use crate::support::proxy::DelayProxy;

/// Turns for a framed read in its own transaction, the status read (one
/// call), and a read in a general transaction.
async fn read_costs(mode: StatementMode) -> (usize, usize, usize) {
    let test_db = TestDb::migrated().await;
    let proxy = DelayProxy::start("127.0.0.1:5432", Duration::from_millis(5)).await;
    let url = format!(
        "postgres://onboarding_app@127.0.0.1:{}/{}?sslmode=disable",
        proxy.port, test_db.name
    );
    let settings = test_db.settings().database.with_statement_mode(mode);
    let db = test_db.database_at(&settings, url);
    let caller = RlsContext::user("user_rt", Some("org_rt"), None);
    db.transaction(&caller, async |tx| {
        progress::start(tx, "default", 1, "profile").await
    })
    .await
    .unwrap();
    // Warm: the pooled connection is open and, in prepared mode, the statement prepared.
    progress::fetch_own_in_one_trip(&db, &caller, "default")
        .await
        .unwrap();
    progress::fetch_own_with_answers_in_one_trip(&db, &caller, "default", &|_| true)
        .await
        .unwrap();

    let before = proxy.turns();
    let record = progress::fetch_own_in_one_trip(&db, &caller, "default")
        .await
        .unwrap()
        .expect("the row started above");
    let one_trip = proxy.turns() - before;
    assert_eq!(record.user_id.as_deref(), Some("user_rt"));

    let before = proxy.turns();
    let (status, _) =
        progress::fetch_own_with_answers_in_one_trip(&db, &caller, "default", &|_| true)
            .await
            .unwrap()
            .expect("the row started above");
    let one_call = proxy.turns() - before;
    assert_eq!(status.user_id.as_deref(), Some("user_rt"));

    let before = proxy.turns();
    db.transaction(&caller, async |tx| progress::fetch_own(tx, "default").await)
        .await
        .unwrap();
    let transaction = proxy.turns() - before;
    (one_trip, one_call, transaction)
}

#[tokio::test]
async fn an_authenticated_read_costs_one_round_trip_with_prepared_statements() {
    let (one_trip, one_call, transaction) = read_costs(StatementMode::Prepared).await;
    assert_eq!(
        one_trip, 1,
        "BEGIN, set_config, SELECT and COMMIT go out together"
    );
    assert_eq!(one_call, 1, "the status read is one call");
    // The general transaction pipelines BEGIN and the context with the first
    // statement, then commits: two turns for one statement.
    assert_eq!(transaction, 2);
}

#[tokio::test]
async fn an_authenticated_read_costs_one_round_trip_behind_a_transaction_pooler() {
    let (one_trip, one_call, transaction) = read_costs(StatementMode::Unnamed).await;
    assert_eq!(one_trip, 1);
    assert_eq!(one_call, 1);
    assert_eq!(transaction, 2);
}

#[tokio::test]
async fn the_first_read_on_a_new_connection_in_unnamed_mode_needs_no_prepare_trip() {
    let test_db = TestDb::migrated().await;
    let proxy = DelayProxy::start("127.0.0.1:5432", Duration::from_millis(5)).await;
    let url = format!(
        "postgres://onboarding_app@127.0.0.1:{}/{}?sslmode=disable",
        proxy.port, test_db.name
    );
    let settings = test_db
        .settings()
        .database
        .with_statement_mode(StatementMode::Unnamed);
    let db = test_db.database_at(&settings, url);
    let caller = RlsContext::anonymous(Some(&"e".repeat(64)));
    db.ping().await.unwrap();
    let before = proxy.turns();
    let none = progress::fetch_own_in_one_trip(&db, &caller, "default")
        .await
        .unwrap();
    assert_eq!(none, None);
    assert_eq!(proxy.turns() - before, 1);
}

/// A read sent as one call runs in no transaction of ours, so the server's
/// bound on it (`statement_timeout`, the query timeout plus 500 ms) is the
/// session's: each direct connection sets it once, when it is opened.
/// Behind a pooler (unnamed statements) no session setting is made, since
/// it would stay on a server connection others are handed.
#[tokio::test]
async fn a_read_in_one_call_is_bounded_by_the_connections_statement_timeout() {
    const SHOW_TIMEOUT: Statement = Statement::new("select 'framed'", &[]).each_in_one_call(
        "select 1 as ord, current_setting('statement_timeout'), $1::text[], $2::text[]",
        0,
    );
    let test_db = TestDb::migrated().await;
    // Straight to the server, also when the suite runs behind a pooler
    // (scripts/test-pooler): the session setting is what is checked.
    let direct = format!(
        "postgres://onboarding_app@127.0.0.1:5432/{}?sslmode=disable",
        test_db.name
    );
    let caller = RlsContext::user("user_st", None, None);
    for (mode, expected) in [
        (StatementMode::Prepared, "3500ms"),
        (StatementMode::Unnamed, "0"),
    ] {
        let settings = test_db
            .settings()
            .database
            .with_statement_mode(mode)
            .with_query_timeout(Duration::from_secs(3));
        let db = test_db.database_at(&settings, direct.clone());
        let rows = db.read_own(&caller, &SHOW_TIMEOUT, &[]).await.unwrap();
        assert_eq!(rows[0].get::<_, String>(1), expected, "{mode:?}");
        assert_eq!(
            rows[0].get::<_, Vec<String>>(2),
            ["authenticated"],
            "{mode:?}"
        );
    }
}
