//! The reads sent as one call share one pooled connection on a direct
//! connection (`lib/db/shared_read.rs`): how many connections they open,
//! that transactions still get theirs, and that the shared one is replaced
//! when it breaks and given back when no read is in flight (a read
//! abandoned at its deadline: `tests/health.rs`). Counts a direct connection's
//! connections, so `scripts/test-pooler` leaves it out.

use std::time::Duration;

use futures_util::future::join_all;
use onboarding::db::progress::{self, ProgressRecord};
use onboarding::db::{Database, DbError, PoolLifecycle, RlsContext, StatementMode};

use crate::support::{TestDb, app_backends, connect};

async fn start(db: &Database, context: &RlsContext) -> ProgressRecord {
    db.transaction(context, async |tx| {
        progress::start(tx, "default", 1, "profile").await
    })
    .await
    .unwrap()
    .expect("a first start creates the row")
}

async fn read(db: &Database, context: &RlsContext) -> Result<Option<uuid::Uuid>, DbError> {
    let found = progress::fetch_own_with_answers_in_one_trip(db, context, "default").await?;
    Ok(found.map(|(record, _)| record.id))
}

/// The application's database with a pool of `size` and a query timeout of `timeout`.
fn database_with_pool(test_db: &TestDb, size: usize, timeout: Duration) -> Database {
    let settings = test_db
        .settings_with(&[("DATABASE_POOL_MAX_SIZE", size.to_string())])
        .database
        .with_query_timeout(timeout);
    Database::new(&settings).unwrap()
}

/// 16 new callers (named after `who`), each with a row, and 48 reads of
/// theirs all in flight at once.
async fn many_reads_at_once(db: &Database, who: &str) {
    let mut callers = Vec::new();
    for n in 0..16 {
        let caller = RlsContext::user(&format!("{who}_{n}"), None, None);
        let id = start(db, &caller).await.id;
        callers.push((caller, id));
    }
    let reads = callers
        .iter()
        .cycle()
        .take(48)
        .map(|(caller, _)| read(db, caller));
    for ((_, id), result) in callers.iter().cycle().zip(join_all(reads).await) {
        assert_eq!(result.unwrap(), Some(*id));
    }
}

#[tokio::test]
async fn reads_in_flight_together_share_one_connection_and_unnamed_ones_do_not() {
    let test_db = TestDb::migrated().await;
    let db = test_db.database();
    assert_eq!(db.statement_mode(), StatementMode::Prepared);
    many_reads_at_once(&db, "reader").await;
    // The transactions that created the rows, one after another, used one
    // connection and gave it back; the reads took that one and kept it.
    assert_eq!(db.open_connections(), 1);
    let admin = connect(&test_db.admin_url()).await;
    assert_eq!(app_backends(&admin, &test_db.name).await.len(), 1);
    // With no read in flight it is back in the pool: a transaction takes it
    // instead of opening a second one.
    start(&db, &RlsContext::user("writer", None, None)).await;
    assert_eq!(db.open_connections(), 1);

    // The same load with unnamed statements (as behind a pooler): the reads
    // go in batches, as many at once as the pool has connections
    // (`lib/db/batched_read.rs`), so the pool grows to its size.
    let unnamed = test_db.database_at(
        &test_db
            .settings()
            .database
            .with_statement_mode(StatementMode::Unnamed),
        test_db.app_url(),
    );
    many_reads_at_once(&unnamed, "unnamed").await;
    assert_eq!(unnamed.open_connections(), 4);
}

#[tokio::test]
async fn a_transaction_gets_a_connection_while_reads_share_another() {
    let test_db = TestDb::migrated().await;
    let db = database_with_pool(&test_db, 2, Duration::from_secs(3));
    let reader = RlsContext::user("reader", None, None);
    let id = start(&db, &reader).await.id;
    let writer = RlsContext::user("writer", None, None);
    let reads = join_all((0..20).map(|_| read(&db, &reader)));
    let (reads, written) = futures_util::future::join(reads, start(&db, &writer)).await;
    assert!(reads.into_iter().all(|read| read.unwrap() == Some(id)));
    assert_eq!(written.user_id.as_deref(), Some("writer"));
    assert_eq!(db.open_connections(), 2);
}

#[tokio::test]
async fn with_a_pool_of_one_reads_and_transactions_take_turns() {
    let test_db = TestDb::migrated().await;
    let db = database_with_pool(&test_db, 1, Duration::from_secs(2));
    let first = RlsContext::user("first", None, None);
    let id = start(&db, &first).await.id;
    assert_eq!(read(&db, &first).await.unwrap(), Some(id));
    // Were the read holding the only connection, this would wait out the
    // query timeout and fail as unavailable.
    let second = RlsContext::user("second", None, None);
    let other = start(&db, &second).await.id;
    assert_eq!(read(&db, &second).await.unwrap(), Some(other));
    assert_eq!(db.open_connections(), 1);
}

#[tokio::test]
async fn a_shared_connection_that_breaks_is_closed_and_the_next_read_opens_another() {
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

#[tokio::test]
async fn the_shared_connection_is_given_back_and_closed_once_idle() {
    let test_db = TestDb::migrated().await;
    let settings = test_db.settings().database.with_lifecycle(PoolLifecycle {
        idle_timeout: Duration::from_millis(200),
        max_lifetime: Duration::from_secs(60),
    });
    let db = Database::new(&settings).unwrap();
    let caller = RlsContext::user("reader", None, None);
    let id = start(&db, &caller).await.id;
    assert_eq!(read(&db, &caller).await.unwrap(), Some(id));
    assert_eq!(db.open_connections(), 1);
    let admin = connect(&test_db.admin_url()).await;
    let mut open = (
        db.open_connections(),
        app_backends(&admin, &test_db.name).await.len(),
    );
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = (
            db.open_connections(),
            app_backends(&admin, &test_db.name).await.len(),
        );
        if open == (0, 0) {
            break;
        }
    }
    assert_eq!(
        open,
        (0, 0),
        "(pool, server) still hold the shared connection"
    );
    // And the next read opens one again.
    assert_eq!(read(&db, &caller).await.unwrap(), Some(id));
}
