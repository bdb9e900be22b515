//! The claim that a typical authenticated read costs one network round trip,
//! checked by counting request/response turns at a delaying proxy (never by
//! timing).

use std::time::Duration;

use onboarding::db::progress;
use onboarding::db::{Database, RlsContext, Statement, StatementMode};
use onboarding::wizard::WizardError;
use onboarding::wizard::flow::default_flow;
use onboarding::wizard::save::{
    Completion, ExpectedVersion, StepWrite, WriteContext, write_answer,
};
use onboarding::wizard::status::RedirectPaths;

use crate::support::TestDb;
use crate::support::proxy::DelayProxy;

/// A migrated database reached through a proxy that delays and counts each
/// turn, with statements sent in `mode`.
async fn behind_counting_proxy(mode: StatementMode) -> (TestDb, DelayProxy, Database) {
    let test_db = TestDb::migrated().await;
    let proxy = DelayProxy::start("127.0.0.1:5432", Duration::from_millis(5)).await;
    let url = format!(
        "postgres://onboarding_app@127.0.0.1:{}/{}?sslmode=disable",
        proxy.port, test_db.name
    );
    let settings = test_db.settings().database.with_statement_mode(mode);
    let db = test_db.database_at(&settings, url);
    (test_db, proxy, db)
}

/// Turns for a framed read in its own transaction, the status read (one
/// call), and a read in a general transaction.
async fn read_costs(mode: StatementMode) -> (usize, usize, usize) {
    let (_test_db, proxy, db) = behind_counting_proxy(mode).await;
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

/// Turns for each of four saves of one step on one connection.
async fn save_turns(mode: StatementMode) -> Vec<usize> {
    let (_test_db, proxy, db) = behind_counting_proxy(mode).await;
    let flow = default_flow().unwrap();
    let paths = RedirectPaths::default();
    let caller = RlsContext::user("user_save_rt", None, None);
    let mut turns = Vec::new();
    for (round, expected) in [
        ExpectedVersion::Absent,
        ExpectedVersion::Any,
        ExpectedVersion::Any,
        ExpectedVersion::Any,
    ]
    .into_iter()
    .enumerate()
    {
        let write = WriteContext {
            flow: &flow,
            flags: &|_| true,
            expected,
            authenticated: true,
            paths: &paths,
        };
        let answers = serde_json::json!({ "fullName": format!("Ada {round}") });
        let answer = StepWrite {
            step: "profile",
            answers: &answers,
            completion: Completion::Draft,
            merge: false,
        };
        let before = proxy.turns();
        let saved = db
            .transaction(&caller, async |tx| write_answer(tx, &write, answer).await)
            .await
            .map_err(|error: WizardError| error.to_string())
            .unwrap();
        turns.push(proxy.turns() - before);
        assert_eq!(saved.step.version, round as i64 + 1, "round {round}");
    }
    turns
}

/// A save: BEGIN, the context, the row's lock and its answers (one turn,
/// the answers read behind the lock); the answer written, the steps recorded
/// (and an event, when a step is completed) together; COMMIT. The first save
/// also starts the row, and with prepared statements the first insert and the
/// first replace each prepare their statement once per connection.
#[tokio::test]
async fn a_save_costs_three_round_trips_in_either_statement_mode() {
    for mode in [StatementMode::Prepared, StatementMode::Unnamed] {
        let turns = save_turns(mode).await;
        assert_eq!(turns[2..], [3, 3], "{mode:?}: {turns:?}");
    }
}

#[tokio::test]
async fn the_first_read_on_a_new_connection_in_unnamed_mode_needs_no_prepare_trip() {
    let (_test_db, proxy, db) = behind_counting_proxy(StatementMode::Unnamed).await;
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
