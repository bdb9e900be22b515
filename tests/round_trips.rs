//! The claim that a typical authenticated read costs one network round trip,
//! checked by counting request/response turns at a delaying proxy (never by
//! timing).

use std::time::Duration;

use onboarding::db::progress;
use onboarding::db::{RlsContext, StatementMode};

use crate::support::TestDb;
use crate::support::proxy::DelayProxy;

async fn read_costs(mode: StatementMode) -> (usize, usize) {
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

    let before = proxy.turns();
    let record = progress::fetch_own_in_one_trip(&db, &caller, "default")
        .await
        .unwrap()
        .expect("the row started above");
    let one_trip = proxy.turns() - before;
    assert_eq!(record.user_id.as_deref(), Some("user_rt"));

    let before = proxy.turns();
    db.transaction(&caller, async |tx| progress::fetch_own(tx, "default").await)
        .await
        .unwrap();
    let transaction = proxy.turns() - before;
    (one_trip, transaction)
}

#[tokio::test]
async fn an_authenticated_read_costs_one_round_trip_with_prepared_statements() {
    let (one_trip, transaction) = read_costs(StatementMode::Prepared).await;
    assert_eq!(
        one_trip, 1,
        "BEGIN, set_config, SELECT and COMMIT go out together"
    );
    // The general transaction pipelines BEGIN and the context with the first
    // statement, then commits: two turns for one statement.
    assert_eq!(transaction, 2);
}

#[tokio::test]
async fn an_authenticated_read_costs_one_round_trip_behind_a_transaction_pooler() {
    let (one_trip, transaction) = read_costs(StatementMode::Unnamed).await;
    assert_eq!(one_trip, 1);
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
