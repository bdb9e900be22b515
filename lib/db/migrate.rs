//! Applies `migrations/` with refinery: timestamped, forward-only, and all
//! pending migrations in one transaction, so a failure leaves the database as
//! it was.

use anyhow::Context;
use tokio_postgres::NoTls;

use crate::db::{parse_pg_url, tls_connector};

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
    /// Names of the migrations applied by this run, oldest first.
    pub applied: Vec<String>,
}

/// Applies every pending migration to the database at `url`.
pub async fn run(url: &str) -> anyhow::Result<MigrationReport> {
    run_with(url, runner()).await
}

/// Applies the migrations of `runner` (tests add a failing one to prove atomicity).
pub async fn run_with(url: &str, runner: refinery::Runner) -> anyhow::Result<MigrationReport> {
    let config = parse_pg_url(url, std::time::Duration::from_secs(10))
        .map_err(|problem| anyhow::anyhow!("migration database URL {problem}"))?;
    let mut client = connect(&config).await?;
    let report = runner
        .run_async(&mut client)
        .await
        .context("Failed to apply migrations")?;
    Ok(MigrationReport {
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
    let config = parse_pg_url(url, std::time::Duration::from_secs(10))
        .map_err(|problem| anyhow::anyhow!("migration database URL {problem}"))?;
    let name = config
        .get_dbname()
        .context("the migration database URL names no database")?
        .to_string();
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
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

async fn connect(config: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let client = if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .context("Failed to connect to the database")?;
        tokio::spawn(connection);
        client
    } else {
        let (client, connection) = config
            .connect(tls_connector())
            .await
            .context("Failed to connect to the database")?;
        tokio::spawn(connection);
        client
    };
    Ok(client)
}
