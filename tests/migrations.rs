//! Migrations: clean on an empty database, no-ops the second time, atomic on failure.

use crate::support::{TestDb, connect};

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_are_no_ops_the_second_time() {
    let db = TestDb::empty().await;
    let first = onboarding::db::migrate::run(&db.admin_url()).await.unwrap();
    assert_eq!(
        first.applied.len(),
        onboarding::db::migrate::embedded().len()
    );
    assert!(!first.applied.is_empty());
    let second = onboarding::db::migrate::run(&db.admin_url()).await.unwrap();
    assert!(
        second.applied.is_empty(),
        "second run applied {:?}",
        second.applied
    );
}

#[tokio::test]
async fn create_and_run_creates_a_missing_database_once_and_then_only_migrates() {
    let db = TestDb::absent();
    let first = onboarding::db::migrate::create_and_run(&db.admin_url())
        .await
        .unwrap();
    let second = onboarding::db::migrate::create_and_run(&db.admin_url())
        .await
        .unwrap();
    assert!(first.created, "the database did not exist before");
    assert_eq!(
        first.applied.len(),
        onboarding::db::migrate::embedded().len()
    );
    assert!(!second.created, "the second call found the database");
    assert!(
        second.applied.is_empty(),
        "second run applied {:?}",
        second.applied
    );
}

#[tokio::test]
async fn a_failing_migration_leaves_the_database_as_it_was() {
    let db = TestDb::empty().await;
    let mut migrations = onboarding::db::migrate::embedded();
    migrations.push(
        refinery::Migration::unapplied(
            "V99991231000000__broken",
            "create table onboarding.half_done (id int); select 1 / 0;",
        )
        .unwrap(),
    );
    let result = onboarding::db::migrate::run_with(
        &db.admin_url(),
        refinery::Runner::new(&migrations).set_grouped(true),
    )
    .await;
    assert!(result.is_err(), "the broken migration must fail the run");

    let admin = connect(&db.admin_url()).await;
    let schemas: i64 = admin
        .query_one(
            "select count(*) from pg_namespace where nspname = 'onboarding'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        schemas, 0,
        "the earlier migrations of the failed run were rolled back too"
    );
    let history_rows: i64 = admin
        .query_one(
            "select case when to_regclass('refinery_schema_history') is null then 0
                         else (select count(*) from refinery_schema_history) end",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(history_rows, 0);
}

#[tokio::test]
async fn the_migrate_binary_applies_migrations_to_the_database_it_is_given() {
    let db = TestDb::empty().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["--database-url", &db.admin_url()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("applied V20261128000100__foundation"),
        "{stdout}"
    );
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["--database-url", &db.admin_url()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("no pending migrations"));
}
