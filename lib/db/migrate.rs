//! Applies `migrations/` with refinery: timestamped, forward-only, and all
//! pending migrations in one transaction, so a failure leaves the database as
//! it was.

use anyhow::Context;

use crate::db::{PgTarget, RootSources, parse_pg_url};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The migrations compiled into this binary.
pub fn runner() -> refinery::Runner {
    embedded::migrations::runner()
        .set_grouped(true)
        .set_abort_divergent(true)
        .set_abort_missing(true)
}

/// The migrations compiled into this binary, oldest first.
pub fn embedded() -> Vec<refinery::Migration> {
    embedded::migrations::runner().get_migrations().clone()
}

/// A summary of one migration run.
#[derive(Debug)]
pub struct MigrationReport {
    /// Whether the run created the database first ([`create_and_run`]).
    pub created: bool,
    /// Names of the migrations applied by this run, oldest first.
    pub applied: Vec<String>,
}

/// The URL to migrate the database `database_url` names: its host, port,
/// database and parameters, with the credentials of `migration_url` (a role
/// allowed to create roles and schemas). So the dev server migrates the
/// database it then serves, whichever `DATABASE_URL` names.
pub fn migration_url_for(database_url: &str, migration_url: &str) -> anyhow::Result<String> {
    let mut target = url::Url::parse(database_url).context("DATABASE_URL is not a URL")?;
    let credentials = url::Url::parse(migration_url).context("the migration URL is not a URL")?;
    target
        .set_username(credentials.username())
        .map_err(|()| anyhow::anyhow!("DATABASE_URL cannot carry a user name"))?;
    target
        .set_password(credentials.password())
        .map_err(|()| anyhow::anyhow!("DATABASE_URL cannot carry a password"))?;
    Ok(target.into())
}

/// Applies every pending migration to the database at `url`.
pub async fn run(url: &str) -> anyhow::Result<MigrationReport> {
    run_with(url, runner()).await
}

/// Creates the database `url` names when it is missing, then applies every
/// pending migration: how the dev server, the benchmark and the reliability
/// suite bring up the database they then use.
pub async fn create_and_run(url: &str) -> anyhow::Result<MigrationReport> {
    let created = create_database_if_missing(url).await?;
    Ok(MigrationReport {
        created,
        ..run(url).await?
    })
}

/// Applies the migrations of `runner` (tests add a failing one to prove atomicity).
pub async fn run_with(url: &str, runner: refinery::Runner) -> anyhow::Result<MigrationReport> {
    let target = parse_pg_url(
        url,
        std::time::Duration::from_secs(10),
        &RootSources::from_home(),
    )
    .map_err(|problem| anyhow::anyhow!("migration database URL {problem}"))?;
    let mut client = connect(&target).await?;
    let report = runner
        .run_async(&mut client)
        .await
        .context("Failed to apply migrations")?;
    Ok(MigrationReport {
        created: false,
        applied: report
            .applied_migrations()
            .iter()
            .map(|migration| migration.to_string())
            .collect(),
    })
}

/// Creates the database named in `url` when it does not exist yet, connecting
/// to the `postgres` maintenance database of the same server.
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<bool> {
    let target = parse_pg_url(
        url,
        std::time::Duration::from_secs(10),
        &RootSources::from_home(),
    )
    .map_err(|problem| anyhow::anyhow!("migration database URL {problem}"))?;
    let name = target
        .config
        .get_dbname()
        .context("the migration database URL names no database")?
        .to_string();
    let mut maintenance = target.clone();
    maintenance.config.dbname("postgres");
    let client = connect(&maintenance).await?;
    let exists = client
        .query_opt("select 1 from pg_database where datname = $1", &[&name])
        .await
        .context("Failed to look up the database")?
        .is_some();
    if exists {
        return Ok(false);
    }
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    client
        .batch_execute(&format!("create database {quoted}"))
        .await
        .with_context(|| format!("Failed to create database {name}"))?;
    Ok(true)
}

async fn connect(target: &PgTarget) -> anyhow::Result<tokio_postgres::Client> {
    target.connect().await.map_err(|error| {
        anyhow::anyhow!(
            "Failed to connect to the database: {}",
            super::with_causes(&error)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_database_is_migrated_with_the_migration_roles_credentials() {
        let url = migration_url_for(
            "postgres://onboarding_app@127.0.0.1:5432/elsewhere?sslmode=disable",
            "postgres://postgres:pw@127.0.0.1:5432/onboarding?sslmode=disable",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://postgres:pw@127.0.0.1:5432/elsewhere?sslmode=disable"
        );
        let url = migration_url_for(
            "postgres://app:secret@db.example.com/app",
            "postgres://postgres@127.0.0.1/onboarding",
        )
        .unwrap();
        assert_eq!(url, "postgres://postgres@db.example.com/app");
    }
}
