//! The reads in one call that queue up go as one call
//! (`lib/db/batched_read.rs`): how many calls the server runs, with named
//! statements and unnamed ones (as behind a pooler), that transactions still
//! get their connections, and what a broken connection or a batch past its
//! deadline leaves behind. Whose rows each read gets, in batches:
//! `tests/isolation.rs`. Counts a direct connection's connections, so
//! `scripts/test-pooler` leaves it out.

use std::time::Duration;

use futures_util::future::{join, join_all};
use onboarding::db::progress::{self, ProgressRecord};
use onboarding::db::{Database, DbError, RlsContext, Statement, StatementMode};
use tokio_postgres::types::Type;

use crate::support::{TestDb, app_backends, connect};

/// The application's database in `mode`, with the settings `extra` and a
/// query timeout of `timeout`.
fn database(
    test_db: &TestDb,
    mode: StatementMode,
    extra: &[(&str, String)],
    timeout: Duration,
) -> Database {
    let settings = test_db
        .settings_with(extra)
        .database
        .with_statement_mode(mode)
        .with_query_timeout(timeout);
    test_db.database_at(&settings, test_db.app_url())
}

async fn start(db: &Database, context: &RlsContext) -> ProgressRecord {
    db.transaction(context, async |tx| {
        progress::start(tx, "default", 1, "profile").await
    })
    .await
    .unwrap()
    .expect("a first start creates the row")
}

async fn read(db: &Database, context: &RlsContext) -> Result<Option<uuid::Uuid>, DbError> {
    let found =
        progress::fetch_own_with_answers_in_one_trip(db, context, "default", &|_| true).await?;
    Ok(found.map(|(record, _)| record.id))
}

/// Calls of the status read's function by the application's connections,
/// once those have closed (a backend reports its counts as it exits) and
/// they are at least `at_least`.
async fn status_read_calls(test_db: &TestDb, admin: &tokio_postgres::Client, at_least: i64) -> i64 {
    for _ in 0..100 {
        if app_backends(admin, &test_db.name).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        app_backends(admin, &test_db.name).await.is_empty(),
        "the application's connections did not close"
    );
    // Counts reach the statistics shortly after the backend exits.
    let mut seen = 0;
    for _ in 0..100 {
        admin
            .execute("select pg_stat_clear_snapshot()", &[])
            .await
            .unwrap();
        seen = admin
            .query_one(
                "select coalesce(sum(calls), 0)::int8 from pg_stat_user_functions
                 where schemaname = 'onboarding'
                   and funcname = 'own_progress_with_answers_each_as'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if seen >= at_least {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test]
async fn reads_that_queue_up_go_as_a_few_calls() {
    queued_reads_go_as_a_few_calls(StatementMode::Prepared).await;
}

#[tokio::test]
async fn reads_that_queue_up_behind_a_pooler_go_as_a_few_calls() {
    queued_reads_go_as_a_few_calls(StatementMode::Unnamed).await;
}

async fn queued_reads_go_as_a_few_calls(mode: StatementMode) {
    let test_db = TestDb::migrated().await;
    let admin = connect(&test_db.admin_url()).await;
    admin
        .batch_execute(&format!(
            "alter database \"{}\" set track_functions = 'pl'",
            test_db.name
        ))
        .await
        .unwrap();
    // Idle connections close after 200 ms, so the counts reach the
    // statistics while the test runs.
    let db = database(
        &test_db,
        mode,
        &[("DATABASE_POOL_IDLE_TIMEOUT_MS", "200".into())],
        Duration::from_secs(5),
    );
    let mut callers = Vec::new();
    for n in 0..16 {
        let caller = RlsContext::user(&format!("reader_{n}"), None, None);
        let id = start(&db, &caller).await.id;
        callers.push((caller, id));
    }
    let reads = callers
        .iter()
        .cycle()
        .take(48)
        .map(|(caller, _)| read(&db, caller));
    for ((_, id), found) in callers.iter().cycle().zip(join_all(reads).await) {
        assert_eq!(found.unwrap(), Some(*id));
    }
    assert!(db.open_connections() <= 4);
    // The pool's 4 connections each took a batch at once, the first reads
    // alone; the rest queued and went together.
    let batched = status_read_calls(&test_db, &admin, 1).await;
    assert!(
        (2..=8).contains(&batched),
        "48 reads in flight together took {batched} calls"
    );

    // One read with nothing queued goes at once, as a call of its own.
    let (caller, id) = &callers[0];
    assert_eq!(read(&db, caller).await.unwrap(), Some(*id));
    let after = status_read_calls(&test_db, &admin, batched + 1).await;
    assert_eq!(after, batched + 1);
}

#[tokio::test]
async fn a_transaction_gets_a_connection_while_reads_queue_up() {
    reads_and_a_transaction_at_once(2).await;
}

/// With a pool of one connection each call gives it back, so a transaction
/// gets its turn between calls; were a batch to hold it while reads keep
/// coming, the transaction would wait out the query timeout and fail.
#[tokio::test]
async fn with_a_pool_of_one_reads_and_transactions_take_turns() {
    reads_and_a_transaction_at_once(1).await;
}

/// 20 reads and a transaction in flight together, with a pool of `size`:
/// all of them done well within the query timeout, on no more connections.
async fn reads_and_a_transaction_at_once(size: usize) {
    let test_db = TestDb::migrated().await;
    let db = database(
        &test_db,
        StatementMode::Prepared,
        &[("DATABASE_POOL_MAX_SIZE", size.to_string())],
        Duration::from_secs(2),
    );
    let reader = RlsContext::user("reader", None, None);
    let id = start(&db, &reader).await.id;
    let writer = RlsContext::user("writer", None, None);
    let reads = join_all((0..20).map(|_| read(&db, &reader)));
    let (reads, written) = join(reads, start(&db, &writer)).await;
    assert!(reads.into_iter().all(|read| read.unwrap() == Some(id)));
    assert_eq!(read(&db, &writer).await.unwrap(), Some(written.id));
    assert_eq!(db.open_connections(), size);
}

#[tokio::test]
async fn a_connection_that_breaks_is_closed_and_the_next_read_opens_another() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    let caller = RlsContext::user("reader", None, None);
    let id = start(&db, &caller).await.id;
    assert_eq!(read(&db, &caller).await.unwrap(), Some(id));
    let admin = connect(&test_db.admin_url()).await;
    let before = app_backends(&admin, &test_db.name).await;
    admin
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and usename = 'onboarding_app'",
            &[&test_db.name],
        )
        .await
        .unwrap();
    // The read that finds the connection gone is told the database is
    // unavailable (a 503 to the client); the next one reads again.
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        outcomes.push(read(&db, &caller).await);
        if matches!(outcomes.last(), Some(Ok(_))) {
            break;
        }
    }
    match outcomes.as_slice() {
        [Ok(found)] | [Err(DbError::Unavailable(_)), Ok(found)] => assert_eq!(*found, Some(id)),
        other => panic!("expected a read, or unavailable and then a read: {other:?}"),
    }
    let after = app_backends(&admin, &test_db.name).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(
        !before.contains(&after[0]),
        "the broken connection is still used"
    );
    assert_eq!(db.open_connections(), 1);
}

/// A batch that stalls ends at the query timeout: each of its reads is told
/// the database is unavailable (a 503), the connection it was on is closed,
/// not pooled again while the server may still be busy with it, and the
/// next read gets a fresh one.
#[tokio::test]
async fn a_batch_past_its_deadline_fails_its_reads_and_closes_its_connection() {
    // Reads that name no one: their rows carry the backend's pid.
    const BACKEND: Statement = Statement::new("select 'framed'", &[]).each_in_one_call(
        "select o as ord, pg_backend_pid() as pid
         from generate_series(1, cardinality($1::text[])) as o where $2::text[] is not null",
        0,
    );
    const STALL: Statement = Statement::new("select 'framed'", &[]).each_in_one_call(
        "select o as ord, pg_sleep(2)::text
         from generate_series(1, cardinality($1::text[])) as o where $2::text[] is not null",
        0,
    );
    let test_db = TestDb::migrated().await;
    let db = database(
        &test_db,
        StatementMode::Prepared,
        &[],
        Duration::from_millis(300),
    );
    let anyone = RlsContext::anonymous(None);
    let pid = async || -> i32 { db.read_own(&anyone, &BACKEND, &[]).await.unwrap()[0].get("pid") };
    let before = pid().await;

    let stalled = join_all((0..3).map(|_| db.read_own(&anyone, &STALL, &[]))).await;
    for outcome in stalled {
        match outcome {
            Err(DbError::Unavailable(reason)) => {
                assert!(reason.contains("did not answer within"), "{reason}")
            }
            other => panic!("expected the deadline, got {other:?}"),
        }
    }
    let after = pid().await;
    assert_ne!(after, before, "the interrupted connection was used again");
    let admin = connect(&test_db.admin_url()).await;
    let mut backends = app_backends(&admin, &test_db.name).await;
    for _ in 0..100 {
        if backends == [after] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        backends = app_backends(&admin, &test_db.name).await;
    }
    assert_eq!(
        backends,
        [after],
        "the server still has an interrupted connection"
    );
    assert_eq!(db.open_connections(), 1);
}

/// `read_own` sends a read of a statement without a call for several
/// readers framed, as `one_trip` does.
#[tokio::test]
async fn a_read_without_a_batched_form_goes_alone() {
    const ALONE: Statement = Statement::new("select $1::text as said", &[Type::TEXT]);
    let test_db = TestDb::migrated().await;
    let db = database(
        &test_db,
        StatementMode::Unnamed,
        &[],
        Duration::from_secs(5),
    );
    let anyone = RlsContext::anonymous(None);
    let rows = db.read_own(&anyone, &ALONE, &["hello"]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>("said"), "hello");
}
